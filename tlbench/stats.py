"""The statistics behind every interval, comparison and verdict of a report.

Pure functions on numpy arrays; scores are fractions (accuracy in [0, 1]).

**The design they assume.** Every cell of a dataset is scored on the same test examples, so a
strategy's evidence is a matrix ``values[s, i]``: 1 if seed ``s`` got test example ``i`` right,
else 0 (:class:`Scores`). Seeds (label subset, initialisation, data order) and test examples are
two crossed sources of noise; the bootstrap here resamples both: ``seeds`` with replacement, and
test examples with replacement, the *same* resampled examples in every seed (as the seeds share
one test set). One seed still gets an interval (of test-set noise alone).

**Comparisons** are paired: two strategies' per-example results on the shared seeds and test
examples are subtracted and the difference is bootstrapped the same way. A row's best is its
highest mean (oracles excluded by the caller); every other strategy is compared with it, and the
p-values of a row are adjusted together (Holm–Bonferroni).

**Across tasks** (datasets × backbones × label budgets): the interquartile mean and the
probability of improvement of rliable (Agarwal et al., 2021, "Deep RL at the edge of the
statistical precipice"), with its stratified bootstrap (runs resampled within each task).
rliable's own bootstrap (``rliable.library``) needs ``arch``'s ``random_state`` argument, which
arch 8 removed (and arch 7 cannot be imported under pandas 3), so the stratified bootstrap is
done here, vectorised; the point statistics are rliable's (:mod:`rliable.metrics`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from rliable import metrics as rly
from scipy.stats import trim_mean

CONFIDENCE = 0.95
ALPHA = 0.05
REPS = 2000
#: resamples generated at once (bounds memory for large test sets: CHUNK × examples integers)
CHUNK = 250


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Scores:
    """One strategy's results in one setting: ``values[s, i]`` of seed ``seeds[s]`` on test
    example ``index[i]`` (1 right, 0 wrong). ``per_example`` is False for the fallback of
    records without evidence: one column, each seed's accuracy (then only seeds are resampled
    and the interval leaves the test-set noise out)."""

    seeds: tuple[int, ...]
    index: np.ndarray
    values: np.ndarray
    per_example: bool = True

    @classmethod
    def from_examples(cls, per_seed: Mapping[int, tuple[np.ndarray, np.ndarray]]) -> Scores:
        """``seed -> (index, correct)``; kept: the test examples every seed has."""
        seeds = tuple(sorted(per_seed))
        if not seeds:
            raise ValueError("no seeds")
        common = np.asarray(per_seed[seeds[0]][0])
        for s in seeds[1:]:
            common = np.intersect1d(common, per_seed[s][0])
        common = np.unique(common)
        rows = []
        for s in seeds:
            index, correct = (np.asarray(a) for a in per_seed[s])
            order = np.argsort(index, kind="stable")
            pos = order[np.searchsorted(index, common, sorter=order)]
            rows.append(correct[pos].astype(float))
        return cls(seeds, common, np.vstack(rows))

    @classmethod
    def from_seed_means(cls, per_seed: Mapping[int, float]) -> Scores:
        """The fallback: each seed's accuracy only."""
        seeds = tuple(sorted(per_seed))
        values = np.array([[float(per_seed[s])] for s in seeds])
        return cls(seeds, np.zeros(1, dtype=int), values, per_example=False)

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    def paired_with(self, other: Scores) -> tuple[Scores, Scores]:
        """Both restricted to their shared seeds and test examples, in the same order; by seed
        means when one side has no per-example evidence or they share no test example."""
        index = np.intersect1d(self.index, other.index)
        mixed = self.per_example != other.per_example
        if mixed or (self.per_example and len(index) == 0):
            return self.to_seed_means().paired_with(other.to_seed_means())
        seeds = tuple(s for s in self.seeds if s in other.seeds)
        return self._take(seeds, index), other._take(seeds, index)

    def to_seed_means(self) -> Scores:
        return Scores.from_seed_means(dict(zip(self.seeds, self.values.mean(1))))

    def _take(self, seeds: tuple[int, ...], index: np.ndarray) -> Scores:
        rows = [self.seeds.index(s) for s in seeds]
        cols = np.searchsorted(self.index, index)
        return Scores(seeds, index, self.values[np.ix_(rows, cols)], self.per_example)


@dataclass(frozen=True)
class Comparison:
    """``strategy`` minus the row's best: the mean difference over shared seeds and examples
    with its interval, the two-sided bootstrap p-value, the Holm-adjusted p over the row, and
    whether that adjusted p is below alpha (``told_apart``). ``seeds`` × ``examples`` pairs
    were compared; ``per_example`` False means a seed-level test (no per-example evidence)."""

    strategy: str
    difference: Interval
    p: float
    p_holm: float
    told_apart: bool
    seeds: int
    examples: int
    per_example: bool


@dataclass(frozen=True)
class RowComparison:
    """Every strategy of a row against the row's best (highest mean of the candidates)."""

    best: str
    best_mean: float
    comparisons: tuple[Comparison, ...]
    alpha: float = ALPHA

    def of(self, strategy: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.strategy == strategy), None)


# ---------------------------------------------------------------------------- bootstrap

def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def bootstrap_means(values: np.ndarray, reps: int = REPS,
                    seed: int | np.random.Generator = 0, resample_seeds: bool = True) -> np.ndarray:
    """``reps`` bootstrap replicates of the grand mean of ``values`` (seeds × examples):
    seeds resampled with replacement, then test examples with replacement (the same examples
    in every seed). ``resample_seeds=False`` keeps the seeds fixed (test-set noise only).
    Vectorised: a chunk of resamples is one matrix product of resample counts
    (chunk × examples) with the values."""
    rng = _rng(seed)
    values = np.asarray(values, dtype=float)
    n_seeds, n = values.shape
    out = np.empty(reps)
    for start in range(0, reps, CHUNK):
        k = min(CHUNK, reps - start)
        picks = rng.integers(0, n, size=(k, n)) + n * np.arange(k)[:, None]
        counts = np.bincount(picks.ravel(), minlength=k * n).reshape(k, n)
        per_seed = counts @ values.T / n                          # k × seeds
        if resample_seeds:
            seeds = rng.integers(0, n_seeds, size=(k, n_seeds))
            per_seed = np.take_along_axis(per_seed, seeds, 1)
        out[start:start + k] = per_seed.mean(1)
    return out


def percentile(replicates: np.ndarray, estimate: float, confidence: float = CONFIDENCE,
               bounds: tuple[float, float] | None = None) -> Interval:
    lo, hi = np.quantile(replicates, [(1 - confidence) / 2, (1 + confidence) / 2])
    if bounds is not None:
        lo, hi = np.clip([lo, hi], *bounds)
    return Interval(float(estimate), float(lo), float(hi))


def mean_interval(scores: Scores, reps: int = REPS, confidence: float = CONFIDENCE,
                  seed: int = 0) -> Interval:
    """Mean accuracy and its two-level percentile bootstrap interval, clipped to [0, 1]."""
    reps_ = bootstrap_means(scores.values, reps, seed)
    return percentile(reps_, scores.mean, confidence, (0.0, 1.0))


def bootstrap_p(replicates: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from bootstrap replicates of a difference: twice the
    smaller share of replicates on either side of 0 (each counted with the +1 of an exact
    Monte Carlo test), at most 1. It is below alpha exactly when 0 lies outside the
    (1 − alpha) percentile interval, up to the resolution 2 / (reps + 1)."""
    n = len(replicates)
    below = (1 + np.count_nonzero(replicates <= 0)) / (n + 1)
    above = (1 + np.count_nonzero(replicates >= 0)) / (n + 1)
    return float(min(1.0, 2 * min(below, above)))


def sign_flip_p(differences: np.ndarray) -> float:
    """Exact two-sided p-value of a paired sign-flip (randomisation) test on per-seed
    differences: the share of the 2^n sign patterns whose mean is at least as far from 0.
    With n seeds it is at least 2 / 2^n (0.5 for 2 seeds, 0.25 for 3)."""
    d = np.asarray(differences, dtype=float)
    n = len(d)
    if n == 0 or np.allclose(d, 0):
        return 1.0
    signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)  # 2^n × n of ±1
    means = np.abs(signs @ d) / n
    return float(np.mean(means >= abs(d.mean()) - 1e-12))


def paired_difference(best: Scores, other: Scores, reps: int = REPS,
                      confidence: float = CONFIDENCE,
                      seed: int | np.random.Generator = 0) -> tuple[Interval, float, Scores]:
    """``other − best`` on their shared seeds and test examples: the mean difference with its
    two-level bootstrap interval, the two-sided p-value, and the paired difference scores.

    Seed-level scores (no per-example evidence) get the exact sign-flip test over seeds
    instead of the bootstrap p-value, which with a handful of seeds would be far too small
    (three seeds that agree in sign would give p ≈ 0.001)."""
    a, b = best.paired_with(other)
    if not a.seeds or a.values.size == 0:
        raise ValueError("no shared seeds or test examples to pair")
    diff = Scores(a.seeds, a.index, b.values - a.values, a.per_example)
    replicates = bootstrap_means(diff.values, reps, seed)
    p = bootstrap_p(replicates) if diff.per_example else sign_flip_p(diff.values[:, 0])
    return percentile(replicates, diff.mean, confidence, (-1.0, 1.0)), p, diff


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, at most 1); NaN stays NaN and
    does not count as a test."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    order = np.argsort(p[ok], kind="stable")
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[ok][order])
    vals = np.empty(m)
    vals[order] = np.minimum(adjusted, 1.0)
    out[ok] = vals
    return out


def compare_row(scores: Mapping[str, Scores], candidates: Sequence[str] | None = None,
                alpha: float = ALPHA, reps: int = REPS, seed: int = 0) -> RowComparison | None:
    """Every strategy of a row against the row's best, Holm–Bonferroni across the row.

    The best is the candidate (default: every strategy; the caller leaves oracles out) with the
    highest mean on these same data, ties broken by name. The best is thus *picked from the
    data it is then compared on*: its own interval is not widened for the pick, and a strategy
    close to the top may have been best by chance; the simulated false-alarm rate of the tests
    (tests/test_stats.py, README "Statistics") includes this effect. Every strategy in
    ``scores`` other than the best, oracles included, gets a comparison; all of them count in
    the Holm correction. None when no candidate has scores.
    """
    pool = [s for s in (candidates if candidates is not None else scores) if s in scores]
    if not pool:
        return None
    best = min(pool, key=lambda s: (-scores[s].mean, s))
    others = [s for s in scores if s != best]
    rng = np.random.default_rng(seed)
    raw = [paired_difference(scores[best], scores[s], reps, seed=rng) for s in others]
    adjusted = holm([p for _, p, _ in raw])
    comps = tuple(Comparison(s, iv, p, float(q), bool(q < alpha), len(d.seeds),
                             d.values.shape[1] if d.per_example else 0, d.per_example)
                  for s, (iv, p, d), q in zip(others, raw, adjusted))
    return RowComparison(best, scores[best].mean, comps, alpha)


# ---------------------------------------------------------------------------- across tasks

@dataclass(frozen=True)
class Aggregate:
    """A strategy's interquartile mean (IQM) and mean over every run of every task, with
    stratified bootstrap intervals; ``runs`` × ``tasks`` scores entered."""

    strategy: str
    iqm: Interval
    mean: Interval
    runs: int
    tasks: int


@dataclass(frozen=True)
class Improvement:
    """P(X > Y): the probability that a run of ``x`` beats a run of ``y`` on a random task
    (rliable's probability of improvement, Mann–Whitney per task, averaged over tasks)."""

    x: str
    y: str
    probability: Interval


@dataclass(frozen=True)
class Profile:
    """Performance profile: the share of runs (over tasks) scoring above each ``tau``."""

    strategy: str
    taus: np.ndarray
    fraction: np.ndarray
    low: np.ndarray
    high: np.ndarray


def stratified_resamples(scores: np.ndarray, reps: int,
                         rng: np.random.Generator) -> np.ndarray:
    """``reps`` resamples of a runs × tasks matrix, runs drawn with replacement within each
    task (rliable's ``StratifiedBootstrap``): shape reps × runs × tasks."""
    runs, tasks = scores.shape
    rows = rng.integers(0, runs, size=(reps, runs, tasks))
    return scores[rows, np.arange(tasks)]


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of every run of every task (rliable)."""
    return float(rly.aggregate_iqm(scores))


def aggregate(scores: Mapping[str, np.ndarray], reps: int = REPS,
              confidence: float = CONFIDENCE, seed: int = 0) -> list[Aggregate]:
    """IQM and mean of each strategy's runs × tasks matrix, with stratified bootstrap
    percentile intervals."""
    rng = np.random.default_rng(seed)
    out = []
    for name, x in scores.items():
        x = np.asarray(x, dtype=float)
        boot = stratified_resamples(x, reps, rng).reshape(reps, -1)
        iqms = trim_mean(boot, 0.25, axis=1)  # rliable's IQM, per resample
        out.append(Aggregate(name, percentile(iqms, iqm(x), confidence),
                             percentile(boot.mean(1), float(rly.aggregate_mean(x)), confidence),
                             x.shape[0], x.shape[1]))
    return out


def improvement(scores: Mapping[str, np.ndarray], reps: int = 200,
                confidence: float = CONFIDENCE, seed: int = 0) -> list[Improvement]:
    """P(X > Y) for every ordered pair of strategies (same tasks in the same column order),
    with stratified bootstrap intervals (each strategy's runs resampled within each task)."""
    rng = np.random.default_rng(seed)
    names = list(scores)
    out = []
    for x_name in names:
        for y_name in names:
            if x_name == y_name:
                continue
            x, y = (np.asarray(scores[n], dtype=float) for n in (x_name, y_name))
            boot = _improvement(stratified_resamples(x, reps, rng),
                                stratified_resamples(y, reps, rng))
            point = float(rly.probability_of_improvement(x, y))
            out.append(Improvement(x_name, y_name, percentile(boot, point, confidence, (0, 1))))
    return out


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """rliable's probability of improvement, vectorised over leading resample axes: per task
    the Mann–Whitney U / (runs_x · runs_y), i.e. P(x > y) + P(x = y) / 2, averaged over tasks.
    ``x``: ... × runs_x × tasks, ``y``: ... × runs_y × tasks."""
    gt = (x[..., :, None, :] > y[..., None, :, :]).mean((-3, -2))
    eq = (x[..., :, None, :] == y[..., None, :, :]).mean((-3, -2))
    return (gt + eq / 2).mean(-1)


def profiles(scores: Mapping[str, np.ndarray], taus: np.ndarray | None = None,
             reps: int = REPS, confidence: float = CONFIDENCE, seed: int = 0) -> list[Profile]:
    """Performance profiles (score distributions: the share of all runs of all tasks above
    each tau, as rliable's ``create_performance_profile``), with stratified bootstrap bands."""
    taus = np.linspace(0, 1, 101) if taus is None else np.asarray(taus, dtype=float)
    rng = np.random.default_rng(seed)
    out = []
    for name, x in scores.items():
        x = np.asarray(x, dtype=float)
        boot = stratified_resamples(x, reps, rng).reshape(reps, -1)
        frac = (x.reshape(-1)[:, None] > taus).mean(0)
        curves = (boot[:, :, None] > taus).mean(1)           # reps × taus
        lo, hi = np.quantile(curves, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
        out.append(Profile(name, taus, frac, lo, hi))
    return out
