"""Calibration (tlbench.analysis.calibration) against a known truth: simulated models whose
confidence is the true probability of being right (calibrated) or a sharpened version of it
(over-confident), with seeds that differ in accuracy and test examples that differ in
difficulty; ECE and NLL through the accuracy statistics (tlbench.analysis.stats)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit

from tlbench.analysis import calibration as C
from tlbench.analysis import stats as S
from tlbench.contract.evidence import SplitEvidence

SEED_SD = 0.3        # seeds' spread, in logits (about 4 points of accuracy here)


def latent(seeds: int, n: int, rng, z=None) -> np.ndarray:
    """``seeds × n`` logits of being right: 1.5 − difficulty (shared by every seed) + a seed
    effect + each (seed, example)'s own noise."""
    z = rng.standard_normal(n) if z is None else z
    seed = SEED_SD * rng.standard_normal((seeds, 1))
    return 1.5 - z + seed + 0.5 * rng.standard_normal((seeds, n))


def simulate(seeds: int, n: int, sharpen: float, rng, z=None) -> dict[int, SplitEvidence]:
    """Evidence of one strategy: right with probability ``p = sigmoid(logit)``, confident
    ``sigmoid(sharpen · logit)`` (1: calibrated, above 1: over-confident), the true class
    getting half of the rest when wrong (stored as float16, as the evidence is)."""
    logit = latent(seeds, n, rng, z)
    conf = expit(sharpen * logit)
    right = rng.random(logit.shape) < expit(logit)
    out = {}
    for s in range(seeds):
        pred = np.where(right[s], 0, 1).astype(np.int16)
        prob_true = np.where(right[s], conf[s], (1 - conf[s]) / 2)
        out[s] = SplitEvidence(np.arange(n, dtype=np.int32), np.zeros(n, np.int16), pred,
                               conf[s].astype(np.float16), prob_true.astype(np.float16))
    return out


def true_values(sharpen: float) -> tuple[float, float]:
    """(ECE, NLL) expected over seeds and examples, from a large sample of the probabilities
    themselves (no right/wrong noise): ECE from each bin's true gap."""
    rng = np.random.default_rng(1)
    logit = latent(20, 100_000, rng)
    p, conf = expit(logit), expit(sharpen * logit)
    ece = np.mean([np.abs(np.bincount(C.bin_of(c), p_ - c, C.BINS)).sum() / len(c)
                   for p_, c in zip(p, conf)])
    nll = np.mean(-p * np.log(conf) - (1 - p) * np.log((1 - conf) / 2))
    return float(ece), float(nll)


def binomial_floor(rate: float, reps: int) -> float:
    return rate - 2 * math.sqrt(rate * (1 - rate) / reps)


def test_binning_plugin_ece_and_nll_floor():
    conf = np.array([0.0, 0.5, 0.99, 1.0])
    assert C.bin_of(conf).tolist() == [0, 7, 14, 14]               # 1.0 in the last bin
    # bins 0.95 (2 right of 2) and 0.65 (0 of 2): |1 − 0.95| · 2/4 + |0 − 0.65| · 2/4
    assert C.plugin_ece([0.95, 0.95, 0.65, 0.65], [1, 1, 0, 0]) == pytest.approx(0.35)
    assert C.nll(np.float16([1.0, 0.5, 0.0])).tolist() == pytest.approx(
        [0.0, math.log(2), 24 * math.log(2)])                        # floored, never infinite
    rel = C.reliability(np.array([0.95, 0.97, 0.65]), np.array([1, 0, 1]))
    assert rel.count[14] == 2 and rel.accuracy[14] == 0.5 and rel.confidence[9] == 0.65
    assert np.isnan(rel.accuracy[0])


def test_nll_is_unavailable_without_the_true_class_probability():
    e = simulate(2, 10, 1.0, np.random.default_rng(0))
    old = {s: SplitEvidence(v.index, v.label, v.pred, v.prob) for s, v in e.items()}
    assert C.nll_scores(old) is None and C.nll_scores(e).values.shape == (2, 10)
    assert C.ece_scores(old).values.shape == (2, 10)                 # ECE needs only prob


@pytest.mark.parametrize("seeds, n", [(3, 300), (5, 1000)])
def test_a_calibrated_model_has_ece_0_within_its_interval(seeds, n):
    rng, reps = np.random.default_rng(seeds), 150
    covered, plugin = 0, []
    for _ in range(reps):
        e = simulate(seeds, n, 1.0, rng)
        covered += 0.0 in C.negated(S.estimate(C.ece_scores(e)).interval())
        plugin.append(np.mean([C.plugin_ece(v.prob, v.correct) for v in e.values()]))
    assert covered / reps >= binomial_floor(0.95, reps)
    assert np.mean(plugin) > 0.02        # the plug-in would call it miscalibrated


def test_an_over_confident_model_is_told_apart_and_its_ece_estimated():
    truth, _ = true_values(2.5)
    assert truth == pytest.approx(0.12, abs=0.01)
    rng, reps = np.random.default_rng(3), 100
    covered = apart = 0
    for _ in range(reps):
        z = rng.standard_normal(300)      # one test set: both strategies see the same examples
        scores = {"calibrated": C.ece_scores(simulate(3, 300, 1.0, rng, z)),
                  "over": C.ece_scores(simulate(3, 300, 2.5, rng, z))}
        result = S.compare_row(scores)
        apart += result.best == "calibrated" and result.of("over").told_apart
        covered += truth in C.negated(S.estimate(scores["over"], S.row_floor(scores.values()))
                                      .interval())
    assert apart / reps >= 0.9
    assert covered / reps >= binomial_floor(0.93, reps)


def test_nll_intervals_cover_the_truth_and_equal_models_are_rarely_told_apart():
    truths = {k: true_values(k)[1] for k in (1.0, 4.0)}
    assert truths[1.0] < truths[4.0]                                 # a proper score
    rng, reps = np.random.default_rng(4), 150
    covered = alarms = found = 0
    for _ in range(reps):
        z = rng.standard_normal(300)
        scores = {name: C.nll_scores(simulate(5, 300, k, rng, z))
                  for name, k in (("a", 1.0), ("b", 1.0), ("over", 4.0))}
        floor = S.row_floor(scores.values())
        covered += truths[1.0] in C.negated(S.estimate(scores["a"], floor).interval())
        result = S.compare_row(scores, bounds=None)
        alarms += result.pair("a", "b").told_apart
        over = result.pair("a", "over")                              # over − a, in −NLL
        found += over.told_apart and over.difference.high < 0
    assert covered / reps >= binomial_floor(0.95, reps)
    assert alarms / reps <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / reps)
    assert found / reps >= 0.85          # 0.43 nats apart; NLL's seed spread is large
