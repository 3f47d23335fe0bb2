"""The statistics (tlbench.analysis.stats) against a known truth, simulated with the seed-to-seed spread
real runs have (tlbench.analysis.simulate): coverage of the 95% interval, false "told apart" verdicts in
rows of equal strategies, power, ties, too few seeds, and the aggregates across tasks."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tlbench.analysis import stats as S
from tlbench.analysis.simulate import correct_matrix

NAMES = "abcd"


def row(accuracies, seeds, n, seed_sd, rng, agreement=0.5) -> dict[str, S.Scores]:
    y = correct_matrix(accuracies, seeds, n, seed_sd, agreement, rng).astype(float)
    return {NAMES[k]: S.Scores(tuple(range(seeds)), np.arange(n), y[k]) for k in range(len(y))}


def binomial_floor(rate: float, reps: int) -> float:
    """``rate`` less two simulation standard errors."""
    return rate - 2 * math.sqrt(rate * (1 - rate) / reps)


@pytest.mark.parametrize("seeds", [3, 5])
@pytest.mark.parametrize("n", [120, 360])
def test_the_interval_covers_the_truth_with_seeds_that_disagree(seeds, n):
    rng, reps = np.random.default_rng(seeds * 1000 + n), 150
    for seed_sd in (0.0, 0.02, 0.04, 0.06):
        covered = 0
        for _ in range(reps):
            scores = row([0.8] * 4, seeds, n, seed_sd, rng)
            floor = S.row_floor(scores.values())
            covered += 0.8 in S.mean_interval(scores["a"], floor=floor)
        assert covered / reps >= binomial_floor(0.93, reps), (seed_sd, covered / reps)


@pytest.mark.parametrize("seeds", [3, 5])
def test_equal_strategies_are_told_apart_in_at_most_5_percent_of_rows(seeds):
    rng, reps = np.random.default_rng(seeds), 150
    for n in (120, 360):
        for seed_sd in (0.0, 0.03, 0.06):
            alarms = sum(any(c.told_apart for c in S.compare_row(row([0.8] * 4, seeds, n, seed_sd,
                                                                     rng)).comparisons)
                         for _ in range(reps))
            # at most 5% (plus two simulation standard errors)
            assert alarms / reps <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / reps), (n, seed_sd)


def test_a_large_gap_is_found_and_a_small_one_needs_seeds_that_agree():
    rng, reps = np.random.default_rng(7), 60
    found = sum(S.compare_row(row([0.9, 0.7, 0.7], 3, 360, 0.03, rng)).of("b").told_apart
                for _ in range(reps))
    assert found / reps >= 0.7          # 20 points, 3 seeds, seed SD 3: 80% in bench/statistics.py
    small_agree = sum(S.compare_row(row([0.85, 0.8], 5, 360, 0.0, rng)).pair("a", "b").told_apart
                      for _ in range(reps))
    small_spread = sum(S.compare_row(row([0.85, 0.8], 5, 360, 0.04, rng)).pair("a", "b").told_apart
                       for _ in range(reps))
    assert small_agree > small_spread   # the seeds' spread costs power, visibly


def test_two_seeds_give_intervals_but_no_verdict():
    scores = row([0.95, 0.5], 2, 360, 0.0, np.random.default_rng(0))
    result = S.compare_row(scores)
    assert result.no_verdict == "2 shared seeds: a verdict needs at least 3"
    c = result.of("b")
    assert c.difference.high < 0 and c.p_holm < 0.05 and not c.told_apart


def test_the_best_is_defined_by_exact_counts_and_ties_are_ties():
    y = np.zeros((3, 10))
    y[:, :7] = 1
    other = y.copy()
    other[0, 7], other[1, 0] = 1, 0       # same count, other examples
    low = y.copy()
    low[2, 0] = 0
    scores = {n: S.Scores((0, 1, 2), np.arange(10), v) for n, v in
              (("low", low), ("first", y), ("second", other))}
    result = S.compare_row(scores, candidates=["second", "first", "low"])
    assert result.tied == ("second", "first") and result.best == "second"
    assert result.of("first").difference.estimate == 0 and not result.of("first").told_apart
    assert S.correct_counts(scores) == {"low": 20.0, "first": 21.0, "second": 21.0}


def test_every_pair_is_in_one_holm_correction():
    scores = row([0.9, 0.8, 0.7], 3, 360, 0.01, np.random.default_rng(3))
    result = S.compare_row(scores)
    assert len(result.pairs) == 3
    raw = [c.p for _, _, c in result.pairs]
    assert [c.p_holm for _, _, c in result.pairs] == pytest.approx(list(S.holm(raw)))
    bc = result.pair("b", "c")
    assert bc.difference.estimate < 0 and result.pair("c", "b").difference.estimate > 0


def test_holm_adjusts_step_down_and_skips_nan():
    assert S.holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    out = S.holm([0.02, math.nan])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1])


def test_one_seed_has_test_noise_only_and_is_said_so():
    scores = row([0.8], 1, 300, 0.0, np.random.default_rng(1))["a"]
    est = S.estimate(scores)
    assert not est.seed_variance and est.seeds == 1
    assert est.se == pytest.approx(scores.values.std(ddof=1) / math.sqrt(300))


def test_seed_level_scores_get_a_t_interval_over_seeds():
    scores = S.Scores.from_seed_means({0: 0.80, 1: 0.84, 2: 0.82})
    iv = S.mean_interval(scores)
    half = 2 * 0.02 / math.sqrt(3) * 4.302653 / 2
    assert iv.estimate == pytest.approx(0.82) and iv.high - iv.estimate == pytest.approx(half, rel=1e-4)


def test_scores_from_examples_align_on_the_shared_test_examples():
    s = S.Scores.from_examples({0: (np.array([3, 1, 2]), np.array([1, 0, 1])),
                                1: (np.array([2, 3, 9]), np.array([0, 1, 1]))})
    assert s.index.tolist() == [2, 3] and s.values.tolist() == [[1, 1], [0, 1]]


def test_across_tasks_the_mean_interval_covers_the_truth():
    rng, reps, covered = np.random.default_rng(11), 150, 0
    truth = np.array([0.6, 0.7, 0.8, 0.9, 0.75, 0.65])
    for _ in range(reps):
        ests = []
        for p in truth:
            scores = row([p, p - 0.05], 3, 200, 0.03, rng)
            floor = S.row_floor(scores.values())
            ests.append(S.estimate(scores["a"], floor))
        agg = S.aggregate({"a": ests}, reps=1000, seed=int(rng.integers(1 << 30)))[0]
        covered += truth.mean() in agg.mean
    assert covered / reps >= binomial_floor(0.90, reps)


def test_share_of_tasks_won_is_complementary_and_profiles_fall():
    rng = np.random.default_rng(5)
    ests = {"a": [], "b": []}
    diffs = {("a", "b"): [], ("b", "a"): []}
    for p in (0.6, 0.7, 0.8, 0.9):
        scores = row([p, p - 0.2], 3, 300, 0.01, rng)
        for n in "ab":
            ests[n].append(S.estimate(scores[n]))
        diffs[("a", "b")].append(S.paired_difference(scores["b"], scores["a"]).estimate)
        diffs[("b", "a")].append(S.paired_difference(scores["a"], scores["b"]).estimate)
    share = {(i.x, i.y): i.probability for i in S.improvement(diffs, reps=500)}
    assert share[("a", "b")].estimate == 1.0 and share[("b", "a")].estimate == 0.0
    assert share[("a", "b")].low > 0.5
    aggs = {a.strategy: a for a in S.aggregate(ests, reps=500)}
    assert aggs["a"].iqm.low > aggs["b"].iqm.high and aggs["a"].tasks == 4
    profile = S.profiles(ests, reps=200)[0]
    assert profile.fraction[0] == 1.0 and profile.fraction[-1] == 0.0
    assert np.all(np.diff(profile.fraction) <= 0)
    assert np.all(profile.low <= profile.fraction + 1e-9) and np.all(profile.fraction <= profile.high + 1e-9)
