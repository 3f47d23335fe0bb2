"""Calibration as per-example scores: the top-label expected calibration error (ECE) and the
negative log-likelihood (NLL), so that their intervals, paired differences and Holm-adjusted
verdicts are accuracy's own (:mod:`tlbench.analysis.stats`: the crossed seeds × test-examples
model, the row's pooled seed term as a floor, :data:`~tlbench.analysis.stats.MIN_SEEDS`).

**Binning.** Top-label: an example's confidence is the softmax probability of the predicted
class (``SplitEvidence.prob``) and "right" means the predicted class is the true one.
:data:`BINS` = 15 equal-width bins on [0, 1] (bin ``b`` holds confidences in ``[b/15, (b+1)/15)``,
1.0 the last); ECE = Σ_b (n_b / N) · |acc_b − conf_b|, the plug-in of Guo et al. (2017)
(:func:`plugin_ece`).

**ECE as a mean over examples.** With ``r_i = right_i − confidence_i`` and ``g_b`` the sum of
``r`` over bin ``b``, ECE = (1/N) Σ_i sign(g_b(i)) · r_i. The plug-in takes each sign from the
examples it multiplies, which biases it upwards: noise in a bin's gap counts as miscalibration,
and a perfectly calibrated model scores about 6 points on 300 test examples. Here each sign comes
from the *other half* of the test set (examples halved by the parity of their index, the
strategy's seeds pooled), so it is independent of the ``r_i`` it multiplies
(:func:`ece_contributions`): a calibrated model scores 0 in expectation (one estimate may come out
a little below 0), and the (seed, example) scores go through the crossed model as right/wrong
does. Where a bin's true gap is small next to its noise the borrowed sign is sometimes wrong and
the estimate falls short of the truth. Simulated (the model of ``tests/test_calibration.py``, the
table in ``docs/reference/calibration.md``; 3 seeds × 300 examples, seeds differing in accuracy):
a calibrated model's 95% interval covers 0 in 96% of rows (the plug-in averages 5.8 points); a
model whose true ECE is 6.2 points scores 5.0 on average (the plug-in 8.7), its interval covering
the truth in 90% of rows; at a true 12.0, 10.9 and 93%.

**NLL** of an example: −log p(true class) (``SplitEvidence.prob_true``), the probability floored
at :data:`NLL_FLOOR` = 2⁻²⁴, the smallest positive float16 (the type the evidence stores it in),
so at most 16.6 nats: a model that puts less than that on the true class is under-counted there.

Both are "lower is better": :func:`ece_scores` and :func:`nll_scores` give them negated, as the
:class:`~tlbench.analysis.stats.Scores` that :func:`~tlbench.analysis.stats.compare_row` ranks
(higher is better); :func:`negated` turns an interval of such scores back.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tlbench.analysis.stats import Interval, Scores

if TYPE_CHECKING:
    from tlbench.contract.evidence import SplitEvidence

#: equal-width confidence bins on [0, 1]
BINS = 15
#: the smallest probability of the true class an NLL is computed from (the smallest float16 > 0)
NLL_FLOOR = 2.0 ** -24


def bin_of(confidence: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The bin of each confidence: ``floor(confidence · bins)``, 1.0 in the last."""
    return np.minimum((np.asarray(confidence, float) * bins).astype(int), bins - 1)


def plugin_ece(confidence: np.ndarray, right: np.ndarray, bins: int = BINS) -> float:
    """The plug-in top-label ECE of one set of predictions (Guo et al.; biased upwards)."""
    r = np.asarray(right, float) - np.asarray(confidence, float)
    return float(np.abs(np.bincount(bin_of(confidence, bins), r, bins)).sum() / len(r))


def ece_contributions(index: np.ndarray, confidence: np.ndarray, right: np.ndarray,
                      bins: int = BINS) -> np.ndarray:
    """Each (seed, example)'s share of the ECE estimate (module docstring): ``confidence`` and
    ``right`` are ``seeds × examples``, column ``j`` being example ``index[j]`` for every seed;
    the result, of the same shape, has the estimate as its mean. Its sign for an example of one
    half of the examples (by ``index`` parity) is that of its bin's gap over the other half, all
    seeds pooled (0 where that bin is empty there)."""
    r = np.asarray(right, float) - np.asarray(confidence, float)
    b = bin_of(confidence, bins)
    half = np.broadcast_to(np.asarray(index) % 2, r.shape)
    out = np.zeros_like(r)
    for h in (0, 1):
        sign = np.sign(np.bincount(b[half != h], r[half != h], bins))
        out[half == h] = sign[b[half == h]] * r[half == h]
    return out


def nll(prob_true: np.ndarray) -> np.ndarray:
    """−log p(true class) per example, p floored at :data:`NLL_FLOOR`."""
    return -np.log(np.maximum(np.asarray(prob_true, float), NLL_FLOOR))


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram's points: per bin, the number of predictions, their mean confidence
    and the share that is right (NaN in an empty bin)."""

    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray


def reliability(confidence: np.ndarray, right: np.ndarray, bins: int = BINS) -> Reliability:
    b = bin_of(confidence, bins)
    count = np.bincount(b, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return Reliability(count, np.bincount(b, np.asarray(confidence, float), bins) / count,
                           np.bincount(b, np.asarray(right, float), bins) / count)


def ece_scores(per_seed: Mapping[int, SplitEvidence], bins: int = BINS) -> Scores:
    """Minus :func:`ece_contributions` of one strategy's seeds (``seed -> SplitEvidence`` of one
    split) on the examples every seed has."""
    confidence = Scores.from_examples({s: (e.index, e.prob) for s, e in per_seed.items()})
    right = Scores.from_examples({s: (e.index, e.correct) for s, e in per_seed.items()})
    return Scores(confidence.seeds, confidence.index,
                  -ece_contributions(confidence.index, confidence.values, right.values, bins))


def nll_scores(per_seed: Mapping[int, SplitEvidence]) -> Scores | None:
    """Minus the NLL of each (seed, example); None when a seed's evidence has no ``prob_true``
    (stored before it was kept): never guessed."""
    if any(e.prob_true is None for e in per_seed.values()):
        return None
    return Scores.from_examples({s: (e.index, -nll(e.prob_true)) for s, e in per_seed.items()})


def negated(interval: Interval) -> Interval:
    """The interval of minus the quantity (the ECE or NLL of an interval of its scores)."""
    return Interval(-interval.estimate, -interval.high, -interval.low)
