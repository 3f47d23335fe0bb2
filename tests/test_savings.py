"""What transfer saves: the interpolation of label savings (exact cases, beyond and below the
measured range), its bootstrap interval against a known truth, and compute to accuracy on
hand-made records."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tlbench.contract.evidence import SplitEvidence
from tlbench.contract.results import CellRecord, flatten
from tlbench.analysis.savings import (AT_OR_BELOW, BEYOND, REACHED, compute_to_accuracy, first_reach, fmt_ratio,
                             label_savings, reach, sentence)

# ---------------------------------------------------------------------------- reach


def test_reach_interpolates_linearly_in_log_fraction():
    f, status = reach([0.1, 1.0], [0.3, 0.9], 0.6)
    assert status == REACHED and f == pytest.approx(10 ** -0.5)        # halfway in log10
    f, status = reach([0.01, 0.1, 1.0], [0.5, 0.8, 0.7], 0.75)           # first crossing
    assert status == REACHED and f == pytest.approx(10 ** (-2 + 5 / 6))
    f, status = reach([0.1, 1.0], [0.3, 0.9], 0.9)                       # exactly a measured point
    assert status == REACHED and f == pytest.approx(1.0)


def test_reach_beyond_and_below_the_measured_range():
    f, status = reach([0.01, 0.1, 1.0], [0.5, 0.8, 0.7], 0.85)
    assert status == BEYOND and math.isnan(f)
    f, status = reach([0.05, 0.5], [0.6, 0.7], 0.55)
    assert status == AT_OR_BELOW and f == pytest.approx(0.05)           # an upper bound
    fracs, statuses = reach([0.1, 1.0], np.array([[0.3, 0.9], [0.3, 0.5]]), np.array([0.6, 0.6]))
    assert list(statuses) == [REACHED, BEYOND]
    with pytest.raises(ValueError):
        reach([1.0, 0.1], [0.3, 0.9], 0.5)


# ---------------------------------------------------------------------------- label savings

def frame(rows) -> pd.DataFrame:
    """rows: (strategy, fraction, [test accuracy per seed])."""
    out = []
    for strategy, frac, accs in rows:
        for seed, acc in enumerate(accs):
            out.append(dict(cell_id=f"{strategy}-{frac}-{seed}", dataset="d", backbone="b",
                            strategy=strategy, label_fraction=frac, seed=seed, test_acc=acc,
                            has_target_domain=False))
    return pd.DataFrame(out)


HAND = [("scratch", 0.05, [0.39, 0.40, 0.41]), ("scratch", 0.2, [0.59, 0.60, 0.61]),
        ("scratch", 1.0, [0.79, 0.80, 0.81]),
        ("lora", 0.05, [0.69, 0.70, 0.71]), ("lora", 0.2, [0.84, 0.85, 0.86]),
        ("linear_probe", 0.05, [0.34, 0.35, 0.36])]


def test_label_savings_by_hand():
    found = {(s.strategy, s.fraction): s for s in
             label_savings(frame(HAND), ["scratch"], ["lora", "linear_probe"], n_boot=300)}
    lora = found[("lora", 0.05)]
    # 0.70 lies halfway between scratch's 0.60 at 20% and 0.80 at 100%: 20% * sqrt(5) in log
    assert lora.status == REACHED
    assert lora.baseline_fraction == pytest.approx(0.2 * math.sqrt(5))
    assert lora.ratio == pytest.approx(0.2 * math.sqrt(5) / 0.05)          # 8.94×
    assert lora.ratio_low <= lora.ratio <= lora.ratio_high
    assert lora.resampled == "seeds"
    assert sentence(lora) == ("lora at 5% (70.0%) ≈ scratch at 44.7%: 8.9× fewer labels "
                              f"[95% interval {fmt_ratio(lora.ratio_low)} to {fmt_ratio(lora.ratio_high)}]")
    assert lora.ratio_low > 1

    beyond = found[("lora", 0.2)]
    assert beyond.status == BEYOND and math.isinf(beyond.ratio) and beyond.beyond_share >= 0.975
    assert beyond.baseline_max == pytest.approx(0.8) and beyond.baseline_max_fraction == 1.0
    assert "beyond the measured range" in sentence(beyond)
    assert "scratch never gets there (at most 80.0% at 100%, in 100% of the draws too)" in sentence(beyond)

    below = found[("linear_probe", 0.05)]
    assert below.status == AT_OR_BELOW and below.ratio == pytest.approx(1.0)
    assert "at most 1.0× fewer labels" in sentence(below)
    assert ("scratch", 0.05) not in found                         # not compared with itself


def test_one_seed_without_evidence_has_no_interval():
    one = [(s, f, accs[:1]) for s, f, accs in HAND]
    [lora] = [s for s in label_savings(frame(one), ["scratch"], ["lora"]) if s.fraction == 0.05]
    assert lora.ratio == pytest.approx(0.2 * math.sqrt(5) / 0.05)
    assert math.isnan(lora.ratio_low) and lora.resampled == ""


def evidence_of(correct: np.ndarray, order: np.ndarray | None = None) -> dict:
    n = len(correct)
    order = np.arange(n) if order is None else order
    label = np.zeros(n, np.int16)
    pred = np.where(correct, 0, 1).astype(np.int16)
    return {"test": SplitEvidence(order.astype(np.int32), label[order], pred[order],
                                  np.ones(n, np.float16))}


TRUTH = {("scratch", 0.01): 0.50, ("scratch", 0.1): 0.60, ("scratch", 1.0): 0.75,
         ("lora", 0.01): 0.65}
TRUE_RATIO = 10 ** (-1 + 0.05 / 0.15) / 0.01     # scratch reaches 0.65 a third of the way to 100%


def simulate(rng, n=400, seeds=3, seed_sd=0.01, shared=0.8):
    """A suite with known accuracies: each cell's per-example correctness on n shared test rows,
    80% of it driven by the rows' common difficulty (cells err on the same hard examples)."""
    difficulty = rng.random(n)
    rows, evidence = [], {}
    for (strategy, frac), p in TRUTH.items():
        for seed in range(seeds):
            q = p + rng.normal(0, seed_sd)
            z = np.where(rng.random(n) < shared, difficulty, rng.random(n))
            correct = z < q
            cell = f"{strategy}-{frac}-{seed}"
            evidence[cell] = evidence_of(correct, rng.permutation(n))   # any stored order
            rows.append(dict(cell_id=cell, dataset="d", backbone="b", strategy=strategy,
                             label_fraction=frac, seed=seed, test_acc=correct.mean(),
                             has_target_domain=False))
    return pd.DataFrame(rows), evidence


def test_interval_covers_the_true_ratio():
    """Draws from each budget's t distribution (seeds and shared test examples, as the accuracy
    table's intervals): in 100 simulated 3-seed suites with 400 test examples the 95% interval of
    the ratio covers the true one at least 90% of the time; from the seeds' accuracies alone (a t
    interval over 3 seeds, valid but wide) too."""
    rng = np.random.default_rng(1)
    covered = covered_by_seeds = 0
    for rep in range(100):
        df, evidence = simulate(rng)
        [s] = label_savings(df, ["scratch"], ["lora"], evidence, n_boot=400, seed=rep)
        [by_seeds] = label_savings(df, ["scratch"], ["lora"], None, n_boot=400, seed=rep)
        assert s.resampled == "seeds and test examples" and by_seeds.resampled == "seeds"
        covered += s.ratio_low <= TRUE_RATIO <= s.ratio_high
        covered_by_seeds += by_seeds.ratio_low <= TRUE_RATIO <= by_seeds.ratio_high
    assert covered >= 90 and covered_by_seeds >= 90


def test_evidence_is_aligned_by_example_row():
    rng = np.random.default_rng(3)
    df, evidence = simulate(rng)
    sorted_evidence = {}
    for cell, splits in evidence.items():
        ev = splits["test"]
        order = np.argsort(ev.index)
        sorted_evidence[cell] = {"test": SplitEvidence(ev.index[order], ev.label[order],
                                                       ev.pred[order], ev.prob[order])}
    a = label_savings(df, ["scratch"], ["lora"], evidence, n_boot=200, seed=7)
    b = label_savings(df, ["scratch"], ["lora"], sorted_evidence, n_boot=200, seed=7)
    assert (a[0].ratio_low, a[0].ratio_high) == (b[0].ratio_low, b[0].ratio_high)
    # evidence missing for one cell: the whole block falls back to resampling seeds
    del evidence[next(iter(evidence))]
    [c] = label_savings(df, ["scratch"], ["lora"], evidence, n_boot=200)
    assert c.resampled == "seeds" and c.ratio == a[0].ratio


# ---------------------------------------------------------------------------- compute to accuracy

def record(cell_id, strategy, seed, curve, frac=0.1):
    return CellRecord(cell_id=cell_id, dataset="d", backbone="b", strategy=strategy,
                      seed=seed, label_fraction=frac, metrics={"test_acc": 0.5, "val_acc": 0.5},
                      val_curve=[{k: v for k, v in zip(("step", "examples", "seconds", "val_acc",
                                                        "joules"), p) if v is not None}
                                 for p in curve])


def test_first_reach():
    curve = [{"step": 10, "examples": 320, "seconds": 1.0, "val_acc": 0.5},
             {"step": 20, "examples": 640, "seconds": 2.0, "val_acc": 0.8},
             {"step": 30, "examples": 960, "seconds": 3.0, "val_acc": 0.7}]
    hit = first_reach(curve, 0.8)
    assert hit.reached and (hit.step, hit.examples, hit.seconds) == (20, 640, 2.0)
    assert math.isnan(hit.joules)                                  # not recorded
    miss = first_reach(curve, 0.9)
    assert not miss.reached and miss.examples == 960               # what it spent in all
    assert first_reach([], 0.5) is None


def test_compute_to_accuracy_on_hand_made_records():
    records = [
        record("s0", "scratch", 0, [(10, 320, 2.0, 0.3, 20.0), (40, 1280, 8.0, 0.7, 80.0),
                                    (90, 2880, 18.0, 0.82, 180.0)]),
        record("s1", "scratch", 1, [(10, 320, 2.0, 0.4, 20.0), (50, 1600, 10.0, 0.81, 100.0)]),
        record("l0", "lora", 0, [(5, 160, 1.0, 0.85, 10.0), (10, 320, 2.0, 0.9, 20.0)]),
        record("l1", "lora", 1, [(5, 160, 1.5, 0.7, 15.0), (10, 320, 3.0, 0.92, 30.0)]),
        record("p0", "linear_probe", 0, [(5, 160, 0.5, 0.6, None), (10, 320, 1.0, 0.62, None)]),
        record("x0", "finetune", 0, []),                              # no curve: left out
    ]
    frame = pd.DataFrame([flatten(r) for r in records])
    curves = {r.cell_id: r.val_curve for r in records}
    found = {r.strategy: r for r in compute_to_accuracy(frame, curves, target=0.8)}
    assert set(found) == {"scratch", "lora", "linear_probe"}
    scratch, lora, probe = found["scratch"], found["lora"], found["linear_probe"]
    assert (scratch.seeds, scratch.seeds_reached) == (2, 2)
    assert scratch.examples == pytest.approx((2880 + 1600) / 2)
    assert scratch.seconds == pytest.approx(14.0) and scratch.joules == pytest.approx(140.0)
    assert lora.examples == pytest.approx((160 + 320) / 2) and lora.joules == pytest.approx(20.0)
    assert scratch.examples / lora.examples == pytest.approx(9.333, abs=1e-3)   # 9× fewer
    assert probe.seeds_reached == 0 and math.isnan(probe.examples)
    assert probe.spent_examples == 320 and math.isnan(probe.spent_joules)

    # no target: 90% of the best strategy's mean peak (lora: (0.9 + 0.92) / 2 = 0.91)
    auto = {r.strategy: r for r in compute_to_accuracy(frame, curves)}
    assert auto["lora"].target == pytest.approx(0.9 * 0.91)
    assert auto["lora"].examples == pytest.approx((160 + 320) / 2)
    assert auto["scratch"].seeds_reached == 1                      # only seed 0 gets to 0.819
