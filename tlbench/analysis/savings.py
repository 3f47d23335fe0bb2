"""What transfer saves, from the stored records alone: labels and compute.

**Label savings** (:func:`label_savings`): for a transfer strategy at label budget ``f`` with mean
test accuracy ``a``, the budget ``f_b`` at which a baseline (e.g. scratch) reaches ``a`` on its
data-efficiency curve, and the ratio ``f_b / f`` ("lora at 5% ≈ scratch at 60%: 12× fewer
labels"). The baseline's curve is its mean test accuracy at each measured budget, joined by
straight lines in log-fraction (:func:`reach`); ``f_b`` is where it first reaches ``a``. When the
baseline already reaches ``a`` at its smallest budget, ``f_b`` is at most that budget (the ratio
is an upper bound); when it never does, the saving is "beyond the measured range".
The uncertainty comes from the statistics of every other table (:func:`tlbench.analysis.stats.estimate`:
the seeds' spread and, with per-example evidence, the test set's noise): each setting's mean is
drawn from its t distribution, the ratio is read off every drawn pair of curves, and the interval
is the 2.5–97.5 percentile range, its upper end infinite when more than 2.5% of the draws never
reach the accuracy. A saving is claimed only where that interval supports it (:func:`sentence`):
"beyond the measured range" only when at least 97.5% of the draws agree.

**Compute to accuracy** (:func:`compute_to_accuracy`): from each cell's validation curve during
training (points ``{step, examples, seconds, val_acc[, joules]}``), the training examples, seconds
and joules at the first evaluation whose validation accuracy reaches a target, at the granularity
of the evaluations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from tlbench.analysis import stats
from tlbench.analysis.selection import group_scores

REACHED, AT_OR_BELOW, BEYOND = "reached", "at_or_below", "beyond"
CONFIDENCE = 0.95
N_BOOT = 1000
BLOCK = ["dataset", "backbone"]


# ---------------------------------------------------------------------------- interpolation

def reach(fractions: Sequence[float], curve, target) -> tuple[np.ndarray, np.ndarray]:
    """The label fraction at which a data-efficiency curve first reaches ``target``.

    ``fractions``: the measured budgets, ascending (F,); ``curve``: accuracy at each, shape
    (..., F); ``target``: shape (...) or a scalar. The curve is linear in log-fraction between
    measured budgets. Returns ``(fraction, status)`` of shape (...): ``status`` is
    :data:`REACHED` (interpolated, or exactly at a measured budget), :data:`AT_OR_BELOW` (the
    smallest budget already reaches it: ``fraction`` is that budget, an upper bound) or
    :data:`BEYOND` (no measured budget reaches it: ``fraction`` is NaN).
    """
    logf = np.log(np.asarray(fractions, float))
    if np.any(np.diff(logf) <= 0):
        raise ValueError("fractions must be strictly increasing")
    curve = np.asarray(curve, float)
    target = np.broadcast_to(np.asarray(target, float), curve.shape[:-1])
    above = curve >= target[..., None]
    first = np.argmax(above, axis=-1)
    ever = above.any(axis=-1)
    prev = np.maximum(first - 1, 0)
    a0 = np.take_along_axis(curve, prev[..., None], -1)[..., 0]
    a1 = np.take_along_axis(curve, first[..., None], -1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(first > 0, (target - a0) / (a1 - a0), 0.0)
    log_reached = logf[prev] + t * (logf[first] - logf[prev])
    fraction = np.where(ever, np.exp(log_reached), np.nan)
    status = np.where(~ever, BEYOND, np.where(first == 0, AT_OR_BELOW, REACHED))
    return fraction, status


# ---------------------------------------------------------------------------- label savings

@dataclass(frozen=True)
class LabelSaving:
    """One transfer strategy at one budget against one baseline, on one dataset × backbone."""
    dataset: str
    backbone: str
    strategy: str
    baseline: str
    fraction: float             # the strategy's label budget
    accuracy: float             # its mean test accuracy over seeds
    baseline_fraction: float    # where the baseline reaches it (NaN: beyond the measured range)
    status: str                 # REACHED, AT_OR_BELOW (ratio is an upper bound) or BEYOND
    ratio: float                # baseline_fraction / fraction; inf when BEYOND
    ratio_low: float            # 95% interval of the ratio (NaN: no interval, e.g. one seed
    ratio_high: float           #   without evidence; inf: the baseline misses in over 2.5% of the draws)
    beyond_share: float         # share of the draws in which the baseline never gets there
    baseline_max: float         # the baseline's best mean accuracy, and its budget
    baseline_max_fraction: float
    resampled: str              # "seeds and test examples", "seeds" or "" (no interval)


@dataclass
class _Setting:
    """A strategy at one budget: its per-seed test accuracy and its estimate (the same as the
    accuracy table's)."""
    accuracy: np.ndarray
    estimate: stats.Estimate
    per_example: bool


def label_savings(selected: pd.DataFrame, baselines: Sequence[str], strategies: Sequence[str],
                  evidence: Mapping[str, Mapping] | None = None, n_boot: int = N_BOOT,
                  seed: int = 0) -> list[LabelSaving]:
    """Every strategy in ``strategies`` at each of its budgets against each baseline, per
    dataset × backbone where both ran. ``selected``: the records of the selected variants (all
    seeds; columns dataset, backbone, strategy, label_fraction, seed, cell_id, test_acc,
    has_target_domain); ``evidence``: ``cell_id -> split -> SplitEvidence`` (optional);
    ``n_boot`` draws of each setting's mean."""
    rng = np.random.default_rng(seed)
    out = []
    for (dataset, backbone), block in selected.groupby(BLOCK, sort=True):
        settings = _settings(block, evidence or {})
        draws = _Draws(settings, rng, n_boot)
        for base in baselines:
            fracs = sorted(f for s, f in settings if s == base)
            if not fracs:
                continue
            for strategy in strategies:
                for frac in sorted(f for s, f in settings if s == strategy):
                    out.append(_saving(dataset, backbone, strategy, base, frac, fracs,
                                       settings, draws))
    return out


def _settings(block: pd.DataFrame, evidence: Mapping) -> dict[tuple[str, float], _Setting]:
    """Each (strategy, fraction)'s setting; seed terms floored by each fraction's pooled one, as
    in the accuracy table."""
    scores = {(strategy, float(frac)): group_scores(g, "test_acc", evidence)
              for (strategy, frac), g in block.groupby(["strategy", "label_fraction"], sort=True)}
    floors = {f: stats.row_floor(sc for (_, f2), sc in scores.items() if f2 == f)
              for _, f in scores}
    found = {}
    for (strategy, frac), g in block.groupby(["strategy", "label_fraction"], sort=True):
        key = (strategy, float(frac))
        found[key] = _Setting(g.sort_values("seed")["test_acc"].to_numpy(float),
                              stats.estimate(scores[key], floors[key[1]]), scores[key].per_example)
    return found


class _Draws:
    """Draws of each setting's mean accuracy from its t distribution (:func:`tlbench.analysis.stats.draws`),
    made once per block so that all comparisons of a block read the same draws."""

    def __init__(self, settings: dict, rng: np.random.Generator, n_boot: int):
        with_se = {k: s for k, s in settings.items() if math.isfinite(s.estimate.se)}
        self.resampled = ("" if len(with_se) < len(settings) else
                          "seeds and test examples" if all(s.per_example for s in settings.values())
                          else "seeds")
        self.means: dict[tuple[str, float], np.ndarray] = {}
        if self.resampled:
            for key, s in settings.items():
                self.means[key] = stats.draws([s.estimate], n_boot, rng)[:, 0]


def _saving(dataset, backbone, strategy, base, frac, fracs, settings, draws) -> LabelSaving:
    curve = np.array([settings[(base, f)].accuracy.mean() for f in fracs])
    accuracy = float(settings[(strategy, frac)].accuracy.mean())
    reached, status = reach(fracs, curve, accuracy)
    ratio = float(reached) / frac if status != BEYOND else math.inf
    low = high = beyond = math.nan
    if draws.resampled:
        boot_curve = np.column_stack([draws.means[(base, f)] for f in fracs])
        boot_frac, boot_status = reach(fracs, boot_curve, draws.means[(strategy, frac)])
        ratios = np.where(boot_status == BEYOND, np.inf, boot_frac / frac)
        tail = (1 - CONFIDENCE) / 2
        low = float(np.quantile(ratios, tail, method="lower"))
        high = float(np.quantile(ratios, 1 - tail, method="higher"))
        beyond = float(np.mean(boot_status == BEYOND))
    best = int(np.argmax(curve))
    return LabelSaving(dataset, backbone, strategy, base, frac, accuracy,
                       float(reached), str(status), ratio, low, high, beyond,
                       float(curve[best]), float(fracs[best]), draws.resampled)


def fmt_ratio(r: float) -> str:
    """12×, 3.2×, 0.45×; ∞ for a baseline that never gets there."""
    if math.isinf(r):
        return "∞"
    return f"{r:.0f}×" if r >= 10 else f"{r:.2g}×" if r < 1 else f"{r:.1f}×"


def _pct(f: float) -> str:
    return f"{100 * f:.3g}%"


def _interval_text(s: LabelSaving) -> str:
    if math.isnan(s.ratio_low):
        return ""
    return f" [95% interval {fmt_ratio(s.ratio_low)} to {fmt_ratio(s.ratio_high)}]"


def sentence(s: LabelSaving) -> str:
    """"lora at 5% ≈ scratch at 60%: 12× fewer labels [95% interval ...]", or why there is no
    such number. A claim needs its interval: "beyond the measured range" only when 97.5% of the
    draws agree, "N× fewer" only when the interval's lower end is above 1."""
    head = f"{s.strategy} at {_pct(s.fraction)} ({100 * s.accuracy:.1f}%)"
    unsure = math.isnan(s.ratio_low)
    if s.status == BEYOND:
        if unsure or s.beyond_share < 1 - (1 - CONFIDENCE) / 2:
            return (f"{head}: {s.baseline} does not reach it in the measured range at the "
                    f"mean (at most {100 * s.baseline_max:.1f}% at "
                    f"{_pct(s.baseline_max_fraction)}), but the interval does not rule it "
                    f"out{_interval_text(s)}: no saving claimed")
        return (f"{head}: {s.baseline} never gets there (at most {100 * s.baseline_max:.1f}% "
                f"at {_pct(s.baseline_max_fraction)}, in {100 * s.beyond_share:.0f}% of the "
                f"draws too): beyond the measured range, more than "
                f"{fmt_ratio(s.baseline_max_fraction / s.fraction)} fewer labels")
    if unsure or s.ratio_low <= 1 <= s.ratio_high:
        return (f"{head} ≈ {s.baseline} at {_pct(s.baseline_fraction)} at the mean"
                f"{_interval_text(s)}: the interval includes no saving, none claimed")
    if s.status == AT_OR_BELOW:
        return (f"{head}: {s.baseline} already reaches it at its smallest budget, "
                f"{_pct(s.baseline_fraction)}: at most {fmt_ratio(s.ratio)} fewer labels")
    more = "fewer" if s.ratio >= 1 else "more"
    ratio = s.ratio if s.ratio >= 1 else 1 / s.ratio
    return (f"{head} ≈ {s.baseline} at {_pct(s.baseline_fraction)}: "
            f"{fmt_ratio(ratio)} {more} labels{_interval_text(s)}")


# ---------------------------------------------------------------------------- compute to accuracy

@dataclass(frozen=True)
class Reached:
    """Where one cell's validation curve first reached the target: the training examples,
    seconds and joules (NaN where not recorded) at that evaluation; ``reached`` False: never,
    and the numbers are the curve's last point (what the cell spent without getting there)."""
    reached: bool
    step: float
    examples: float
    seconds: float
    joules: float


def first_reach(curve: Sequence[Mapping[str, float]], target: float) -> Reached | None:
    """The first point of ``curve`` with ``val_acc >= target`` (None for an empty curve)."""
    if not curve:
        return None
    hit = next((p for p in curve if p.get("val_acc", -math.inf) >= target), None)
    p = hit if hit is not None else curve[-1]
    return Reached(hit is not None, *(float(p[k]) if p.get(k) is not None else math.nan
                                      for k in ("step", "examples", "seconds", "joules")))


@dataclass(frozen=True)
class ComputeToAccuracy:
    """One strategy in one dataset × backbone × label fraction: the means over the seeds that
    reached the target (``seeds_reached`` of ``seeds``); ``spent_*``: the means over the seeds
    that did not, of what they spent in all."""
    dataset: str
    backbone: str
    label_fraction: float
    strategy: str
    target: float
    seeds: int
    seeds_reached: int
    examples: float
    seconds: float
    joules: float
    spent_examples: float
    spent_seconds: float
    spent_joules: float


def compute_to_accuracy(selected: pd.DataFrame, curves: Mapping[str, Sequence[Mapping]],
                        target: float | None = None,
                        share_of_best: float = 0.9) -> list[ComputeToAccuracy]:
    """Per dataset × backbone × label fraction × strategy of ``selected`` (cells with a
    validation curve in ``curves``, ``cell_id -> points``): the compute until the first
    evaluation at ``target`` validation accuracy, or, when ``target`` is None, at
    ``share_of_best`` × the best strategy's mean (over seeds) of its curve's highest accuracy."""
    out = []
    keys = ["dataset", "backbone", "label_fraction"]
    for (dataset, backbone, frac), block in selected.groupby(keys, sort=True):
        block = block[block["cell_id"].map(lambda c: bool(curves.get(c)))]
        if block.empty:
            continue
        goal = target
        if goal is None:
            peak = block["cell_id"].map(lambda c: max(p["val_acc"] for p in curves[c]))
            goal = share_of_best * float(peak.groupby(block["strategy"]).mean().max())
        for strategy, g in block.groupby("strategy", sort=True):
            found = [first_reach(curves[c], goal) for c in g["cell_id"]]
            hits = [r for r in found if r.reached]
            misses = [r for r in found if not r.reached]
            out.append(ComputeToAccuracy(
                dataset, backbone, float(frac), strategy, goal, len(found), len(hits),
                *_means(hits), *_means(misses)))
    return out


def _means(found: list[Reached]) -> tuple[float, float, float]:
    """Mean examples, seconds and joules (NaN: none, or not recorded)."""
    return tuple(float(np.mean([getattr(r, k) for r in found])) if found else math.nan
                 for k in ("examples", "seconds", "joules"))
