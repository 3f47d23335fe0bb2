"""The statistics behind every interval, comparison and verdict of a report.

Pure functions on numpy arrays; scores are fractions (accuracy in [0, 1]).

**The model.** Every cell of a dataset is scored on the same test examples, so a strategy's
evidence is a matrix ``values[s, i]``: 1 if seed ``s`` got test example ``i`` right, else 0
(:class:`Scores`). Seeds (label subset, initialisation, data order, the variant each seed chose on
its validation split) and test examples are two *crossed* random effects,
``y[s, i] = mu + a[s] + b[i] + e[s, i]``, and what a benchmark wants to know is ``mu``: the
accuracy expected over seeds and over the population the test examples were drawn from. Its
estimate, the grand mean, has variance ``var_a / S + var_b / N + var_e / (S N)``.

**The interval** is a t interval: the variance is estimated from the two mean squares of the
balanced two-way layout, ``(MS_seed + MS_example) / (S N)`` (its expectation exceeds the true
variance by ``var_e / (S N)``: a little conservative, never negative), and the degrees of freedom
are Satterthwaite's. With few seeds ``MS_seed`` rests on ``S - 1`` degrees of freedom, and a seed
spread that happened to come out small would give an interval that is too narrow; so the seed
term is never taken smaller than the *pooled* seed mean square of the row (the strategies compared
on the same data, whose seed spreads are taken to be alike; a strategy whose own spread is larger
keeps its own, with its own degrees of freedom). Simulated against a known truth with seed
effects of SD 0 to 6 points (``tests/test_stats.py``, docs/reference/statistics.md), the 95% interval covers
the truth at least 92% of the time with 3 or more seeds.

**Comparisons** are paired: two strategies' per-example results on their shared seeds and test
examples are subtracted and the difference gets the same t test, its seed term at least the sum of
the two strategies' own. In a row (one dataset × backbone × label fraction) *every pair* of
strategies is tested and the p-values of the row are adjusted together (Holm–Bonferroni), so a
row's "told apart" statements hold together at ``alpha`` whichever strategy turned out best.
Verdicts need :data:`MIN_SEEDS` shared seeds: with two, the seeds' spread rests on one degree
of freedom and false alarms reach 8% when seeds disagree (simulated); the report then gives
intervals and no verdict. The row's best is defined by **exact correct counts** over the seeds and
test examples all its strategies share; exact ties are ties.

**Across tasks** (datasets × backbones × label budgets of one suite): each task's estimate with its
standard error and degrees of freedom (seeds *and* test examples) is drawn from its t distribution,
and the interquartile mean, the mean, the share of tasks on which one strategy beats another and
the performance profiles are computed on every draw. The intervals cover these tasks (their seeds
and test examples), not other datasets.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as st
from scipy.stats import trim_mean

CONFIDENCE = 0.95
ALPHA = 0.05
#: shared seeds a row needs before its comparisons become verdicts
MIN_SEEDS = 3
#: draws of the task estimates behind the across-task intervals
DRAWS = 4000


@dataclass(frozen=True)
class Interval:
    """A point estimate and its interval."""

    estimate: float
    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class SeedTerm:
    """A seed mean square (``N`` times the variance of the seeds' means) and its degrees of
    freedom: one strategy's own, or several pooled."""

    ms: float
    df: float

    @staticmethod
    def pooled(terms: Sequence[SeedTerm | None]) -> SeedTerm | None:
        """The mean of ``terms`` (None ones left out) with Satterthwaite's degrees of freedom (as
        many as all of them together when they agree, fewer when one dominates)."""
        total = SeedTerm.summed(terms)
        return None if total is None else SeedTerm(total.ms / sum(t is not None for t in terms),
                                                   total.df)

    @staticmethod
    def summed(terms: Sequence[SeedTerm | None]) -> SeedTerm | None:
        """The sum of ``terms`` (None ones left out; the seed term of a difference of independent
        strategies) with Satterthwaite's degrees of freedom."""
        terms = [t for t in terms if t is not None]
        if not terms:
            return None
        total = sum(t.ms for t in terms)
        spread = sum(t.ms ** 2 / t.df for t in terms)
        return SeedTerm(total, total ** 2 / spread if spread > 0 else sum(t.df for t in terms))


def row_floor(scores: Iterable[Scores]) -> SeedTerm | None:
    """The pooled seed term of a row's strategies (:meth:`SeedTerm.pooled` of each one's
    :func:`seed_term`): the floor of each strategy's seed term in that row."""
    return SeedTerm.pooled([seed_term(s) for s in scores])


@dataclass(frozen=True)
class Estimate:
    """A mean with its standard error and degrees of freedom; ``seed_variance`` False when the
    seeds' spread could not be estimated (one seed: test-set noise only)."""

    mean: float
    se: float
    df: float
    seeds: int
    examples: int
    seed_variance: bool = True

    def interval(self, confidence: float = CONFIDENCE,
                 bounds: tuple[float, float] | None = None) -> Interval:
        if not math.isfinite(self.se):
            return Interval(self.mean, math.nan, math.nan)
        half = self.se * st.t.ppf((1 + confidence) / 2, self.df) if self.se > 0 else 0.0
        lo, hi = self.mean - half, self.mean + half
        if bounds is not None:
            lo, hi = (float(v) for v in np.clip([lo, hi], *bounds))
        return Interval(self.mean, lo, hi)

    def p_value(self) -> float:
        """Two-sided p-value of "the mean is 0"."""
        if not math.isfinite(self.se):
            return math.nan
        if self.se == 0:
            return 1.0 if self.mean == 0 else 0.0
        return float(2 * st.t.sf(abs(self.mean) / self.se, self.df))


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



# ---------------------------------------------------------------------------- one strategy

def seed_term(scores: Scores) -> SeedTerm | None:
    """The seed mean square of ``scores`` (None with one seed: nothing to estimate it from)."""
    values = scores.values
    n_seeds, n = values.shape
    if n_seeds < 2:
        return None
    means = values.mean(1)
    return SeedTerm(float(n * ((means - means.mean()) ** 2).sum() / (n_seeds - 1)), n_seeds - 1)


def _example_ms(values: np.ndarray) -> float:
    n_seeds, n = values.shape
    if n < 2:
        return 0.0
    means = values.mean(0)
    return float(n_seeds * ((means - means.mean()) ** 2).sum() / (n - 1))


def estimate(scores: Scores, floor: SeedTerm | None = None) -> Estimate:
    """The mean of ``scores`` with its standard error and Satterthwaite degrees of freedom under
    the crossed model (module docstring). ``floor``: the seed term is at least this one (the
    row's pooled term). Seed-level scores (no per-example evidence): a t interval over the seeds'
    accuracies. One seed: test-set noise alone (``seed_variance`` False)."""
    values = scores.values
    n_seeds, n = values.shape
    if not scores.per_example:
        if n_seeds < 2:
            return Estimate(scores.mean, math.nan, math.nan, n_seeds, 0, False)
        sd = float(values[:, 0].std(ddof=1))
        return Estimate(scores.mean, sd / math.sqrt(n_seeds), n_seeds - 1, n_seeds, 0)
    examples = _example_ms(values)
    own = seed_term(scores)
    if own is None:
        return Estimate(scores.mean, math.sqrt(examples / n), max(n - 1, 1), 1, n, False)
    term = floor if floor is not None and floor.ms > own.ms else own
    total = term.ms + examples
    spread = term.ms ** 2 / term.df + (examples ** 2 / (n - 1) if n > 1 else 0.0)
    df = total ** 2 / spread if spread > 0 else math.inf
    return Estimate(scores.mean, math.sqrt(total / (n_seeds * n)), df, n_seeds, n)


def mean_interval(scores: Scores, confidence: float = CONFIDENCE,
                  floor: SeedTerm | None = None) -> Interval:
    """Mean accuracy and its 95% t interval (:func:`estimate`), clipped to [0, 1]."""
    return estimate(scores, floor).interval(confidence, (0.0, 1.0))


# ---------------------------------------------------------------------------- comparisons

@dataclass(frozen=True)
class Difference:
    """``y − x`` on their shared seeds and test examples: its estimate, interval and two-sided
    p-value."""

    x: str
    y: str
    estimate: Estimate
    difference: Interval
    p: float
    per_example: bool


def paired_difference(x: Scores, y: Scores, confidence: float = CONFIDENCE,
                      names: tuple[str, str] = ("x", "y"), same_runs: bool = False,
                      bounds: tuple[float, float] | None = (-1.0, 1.0)) -> Difference:
    """``y − x`` paired on the shared seeds and test examples, its interval clipped to ``bounds``
    (those of a difference of accuracies by default; None for unbounded scores such as a
    log-likelihood); the seed term of the difference
    is at least the sum of the two strategies' own (their seed effects taken as independent;
    where seeds help or hurt both alike, this overstates the spread: conservative).
    ``same_runs``: ``y`` continues ``x``'s runs seed by seed (the budget check's re-runs), so their
    seed effects are not independent and the difference's own seed term is used."""
    a, b = x.paired_with(y)
    if not a.seeds or a.values.size == 0:
        raise ValueError("no shared seeds or test examples to pair")
    diff = Scores(a.seeds, a.index, b.values - a.values, a.per_example)
    floor = (SeedTerm.summed([seed_term(a), seed_term(b)])
             if a.per_example and not same_runs else None)
    est = estimate(diff, floor)
    return Difference(names[0], names[1], est, est.interval(confidence, bounds),
                      est.p_value(), diff.per_example)


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


@dataclass(frozen=True)
class Comparison:
    """``strategy`` minus the row's reference (its best): the mean difference over shared seeds
    and examples with its interval, the two-sided p-value, the Holm-adjusted p over every pair
    of the row, and whether the row may call them apart (``told_apart``: adjusted p below alpha
    and at least :data:`MIN_SEEDS` shared seeds for this pair). ``seeds`` × ``examples`` pairs were compared;
    ``per_example`` False means a seed-level test (no per-example evidence)."""

    strategy: str
    difference: Interval
    p: float
    p_holm: float
    told_apart: bool
    seeds: int
    examples: int
    per_example: bool
    df: float = math.nan


@dataclass(frozen=True)
class RowComparison:
    """Every strategy of a row against its reference. ``tied``: the candidates with the most
    correct answers over the seeds × test examples the whole row shares (exact counts; more
    than one on an exact tie); ``best``, the reference, is the first of them in the order the
    candidates were given (the suite's). ``pairs``: every pair's comparison (``y`` minus ``x``),
    Holm-adjusted together. ``no_verdict``: why the row gives no verdict (no pair has
    :data:`MIN_SEEDS` shared seeds), else None."""

    best: str
    best_mean: float
    comparisons: tuple[Comparison, ...]
    alpha: float = ALPHA
    tied: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str, Comparison], ...] = ()
    no_verdict: str | None = None

    def of(self, strategy: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.strategy == strategy), None)

    def pair(self, x: str, y: str) -> Comparison | None:
        """``y − x`` from the row's pairwise tests (either order)."""
        return _oriented(self.pairs, x, y)


def _oriented(pairs: Sequence[tuple[str, str, Comparison]], x: str, y: str) -> Comparison | None:
    """``y − x`` among ``pairs`` (each ``(a, b, b − a)``), flipped where it was tested as
    ``x − y``."""
    for a, b, c in pairs:
        if (a, b) == (x, y):
            return c
        if (a, b) == (y, x):
            return _flipped(c, y)
    return None


def _flipped(c: Comparison, strategy: str) -> Comparison:
    d = c.difference
    return Comparison(strategy, Interval(-d.estimate, -d.high, -d.low), c.p, c.p_holm,
                      c.told_apart, c.seeds, c.examples, c.per_example, c.df)


def correct_counts(scores: Mapping[str, Scores]) -> dict[str, float]:
    """Each strategy's number of right answers over the seeds and test examples that every one
    of ``scores`` has (exact integers with per-example evidence; seed-level scores: the sum of
    the shared seeds' accuracies)."""
    names = list(scores)
    if all(s.per_example for s in scores.values()):
        seeds = set.intersection(*(set(s.seeds) for s in scores.values()))
        index = scores[names[0]].index
        for s in names[1:]:
            index = np.intersect1d(index, scores[s].index)
        if seeds and len(index):
            shared = tuple(sorted(seeds))
            return {n: float(round(scores[n]._take(shared, index).values.sum())) for n in names}
    seed_level = {n: s.to_seed_means() if s.per_example else s for n, s in scores.items()}
    seeds = tuple(sorted(set.intersection(*(set(s.seeds) for s in seed_level.values()))))
    if not seeds:
        return {n: s.mean for n, s in scores.items()}
    return {n: float(s._take(seeds, s.index).values.sum()) for n, s in seed_level.items()}


def compare_row(scores: Mapping[str, Scores], candidates: Sequence[str] | None = None,
                alpha: float = ALPHA, min_seeds: int = MIN_SEEDS,
                bounds: tuple[float, float] | None = (-1.0, 1.0)) -> RowComparison | None:
    """Every pair of the row's strategies tested (:func:`paired_difference`), Holm–Bonferroni
    across all pairs; each strategy reported against the reference, the first of the
    candidates (default: every strategy, in the given order; the caller leaves oracles out)
    with the most correct answers (:func:`correct_counts`). Since every pair is in the
    correction, picking the best from the same data does not inflate the false alarms.
    ``bounds``: of each difference's interval (:func:`paired_difference`). None when no candidate
    has scores."""
    pool = [s for s in (candidates if candidates is not None else scores) if s in scores]
    if not pool:
        return None
    counts = correct_counts(scores)
    top = max(counts[s] for s in pool)
    tied = tuple(s for s in pool if counts[s] == top)
    best = tied[0]
    names = list(scores)
    raw = [paired_difference(scores[x], scores[y], names=(x, y), bounds=bounds)
           for x, y in itertools.combinations(names, 2)]
    adjusted = holm([d.p for d in raw])
    shared_seeds = max(d.estimate.seeds for d in raw) if raw else len(scores[best].seeds)
    no_verdict = (f"{shared_seeds} shared seed{'s' if shared_seeds != 1 else ''}: a verdict needs "
                  f"at least {min_seeds}" if shared_seeds < min_seeds else None)
    pairs = tuple((d.x, d.y, Comparison(d.y, d.difference, d.p, float(q),
                                        bool(q < alpha) and d.estimate.seeds >= min_seeds,
                                        d.estimate.seeds, d.estimate.examples if d.per_example else 0,
                                        d.per_example, d.estimate.df))
                  for d, q in zip(raw, adjusted))
    comps = tuple(_oriented(pairs, best, s) for s in names if s != best)
    return RowComparison(best, scores[best].mean, comps, alpha, tied, pairs, no_verdict)


# ---------------------------------------------------------------------------- across tasks

@dataclass(frozen=True)
class Aggregate:
    """A strategy's interquartile mean (IQM) and mean over the tasks' estimates, with intervals
    from draws of every task's estimate; ``tasks`` entered, ``seeds`` the fewest any had."""

    strategy: str
    iqm: Interval
    mean: Interval
    seeds: int
    tasks: int


@dataclass(frozen=True)
class Improvement:
    """The share of the tasks on which ``x`` beats ``y`` (an exact tie counts one half)."""

    x: str
    y: str
    probability: Interval


@dataclass(frozen=True)
class Profile:
    """Performance profile: the share of tasks whose accuracy is above each ``tau``."""

    strategy: str
    taus: np.ndarray
    fraction: np.ndarray
    low: np.ndarray
    high: np.ndarray


def draws(estimates: Sequence[Estimate], reps: int = DRAWS,
          rng: np.random.Generator | int = 0) -> np.ndarray:
    """``reps`` × tasks draws of the tasks' true values: each ``mean + se · t(df)`` (no noise
    where a task has no standard error)."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    mean = np.array([e.mean for e in estimates])
    se = np.array([e.se if math.isfinite(e.se) else 0.0 for e in estimates])
    df = np.array([e.df if math.isfinite(e.df) else 1e6 for e in estimates])
    return mean + se * rng.standard_t(df, size=(reps, len(estimates)))


def _percentile(values: np.ndarray, point: float, confidence: float,
                bounds: tuple[float, float] | None = None) -> Interval:
    lo, hi = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    if bounds is not None:
        lo, hi = np.clip([lo, hi], *bounds)
    return Interval(float(point), float(lo), float(hi))


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Interquartile mean (the mean of the middle 50%), rliable's aggregate."""
    return trim_mean(values, 0.25, axis=axis)


def aggregate(per_task: Mapping[str, Sequence[Estimate]], reps: int = DRAWS,
              confidence: float = CONFIDENCE, seed: int = 0) -> list[Aggregate]:
    """Each strategy's IQM and mean over its tasks' estimates (the same tasks, in the same order,
    for every strategy), with percentile intervals over :func:`draws`."""
    rng = np.random.default_rng(seed)
    out = []
    for name, ests in per_task.items():
        means = np.array([e.mean for e in ests])
        d = draws(ests, reps, rng)
        out.append(Aggregate(name, _percentile(iqm(d, 1), float(iqm(means)), confidence, (0, 1)),
                             _percentile(d.mean(1), float(means.mean()), confidence, (0, 1)),
                             min(e.seeds for e in ests), len(ests)))
    return out


def improvement(differences: Mapping[tuple[str, str], Sequence[Estimate]], reps: int = DRAWS,
                confidence: float = CONFIDENCE, seed: int = 0) -> list[Improvement]:
    """For each ordered pair ``(x, y)``, from the tasks' paired estimates of ``x − y``: the share
    of tasks on which ``x`` is better, with a percentile interval over :func:`draws`."""
    rng = np.random.default_rng(seed)
    out = []
    for (x, y), ests in differences.items():
        means = np.array([e.mean for e in ests])
        point = float(((means > 0) + 0.5 * (means == 0)).mean())
        share = (draws(ests, reps, rng) > 0).mean(1)
        out.append(Improvement(x, y, _percentile(share, point, confidence, (0, 1))))
    return out


def profiles(per_task: Mapping[str, Sequence[Estimate]], taus: np.ndarray | None = None,
             reps: int = 1000, confidence: float = CONFIDENCE, seed: int = 0) -> list[Profile]:
    """Performance profiles: the share of tasks above each tau, with percentile bands over
    :func:`draws`."""
    taus = np.linspace(0, 1, 101) if taus is None else np.asarray(taus, dtype=float)
    rng = np.random.default_rng(seed)
    out = []
    for name, ests in per_task.items():
        means = np.array([e.mean for e in ests])
        curves = (draws(ests, reps, rng)[:, :, None] > taus).mean(1)          # reps × taus
        lo, hi = np.quantile(curves, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
        out.append(Profile(name, taus, (means[:, None] > taus).mean(0), lo, hi))
    return out
