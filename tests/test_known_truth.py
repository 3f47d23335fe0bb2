"""Known-truth evidence (tlbench/analysis/simulate.py) and its plugins (tlbench/builtins/known_truth.py): the
generator has the accuracy, seed spread and agreement it is given, cell-by-cell generation follows
the same model, and through `tlbench run` every stored cell is right exactly where the simulation
says. The end-to-end calibration count (many rows) is bench/known_truth.py's: too slow here."""
import textwrap
from importlib.metadata import entry_points

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal, norm

from tlbench.analysis import simulate, stats
from tlbench import testing
from tlbench.builtins import known_truth
from tlbench.contract.errors import NotApplicable
from tlbench.report import data as D
from tlbench.analysis.selection import group_scores
from tlbench.run.store import Store

MODULE = "tlbench.builtins.known_truth"
PLUGIN = [] if MODULE in {ep.value for ep in entry_points(group="tlbench")} else ["--plugin", MODULE]
DATASET, STRATEGY = known_truth.tlbench_datasets()[0], known_truth.tlbench_strategies()[0]


def both_wrong(p: float, agreement: float) -> float:
    """P(two cells with seed_sd = 0 both wrong on one example): their latents are bivariate normal
    with correlation ``agreement``, each wrong above Φ⁻¹(p)."""
    t = norm.ppf(p)
    return float(multivariate_normal([0, 0], [[1, agreement], [agreement, 1]]).cdf([-t, -t]))


# ---------------------------------------------------------------------------- the generator

@pytest.mark.parametrize("p, seed_sd, agreement", [(0.8, 0.03, 0.5), (0.6, 0.05, 0.0), (0.9, 0.0, 0.8)])
def test_matrix_has_the_accuracy_and_seed_spread_it_is_given(p, seed_sd, agreement):
    k, s, n = 2, 300, 6000
    m = simulate.correct_matrix([p, p], s, n, seed_sd, agreement, np.random.default_rng(1))
    assert m.shape == (k, s, n) and m.dtype == bool
    per_seed = m.mean(2)                                            # k × s accuracies
    # the grand mean: seed effects (k·s of them), the shared difficulty (n) and the cells' noise
    se = np.sqrt(seed_sd ** 2 / (k * s) + p * (1 - p) / n + p * (1 - p) / (k * s * n))
    assert abs(m.mean() - p) < 4 * se, (m.mean(), se)
    # the spread over seeds: seed_sd, plus at most p(1-p)/n of each seed's own sampling noise
    sd = per_seed.std(1, ddof=1).mean()
    expected = np.sqrt(seed_sd ** 2 + p * (1 - p) / n * np.array([0, 1]))
    se_sd = max(seed_sd, np.sqrt(p * (1 - p) / n)) / np.sqrt(2 * (s - 1) * k)
    assert expected[0] - 4 * se_sd < sd < expected[1] + 4 * se_sd, (sd, expected, se_sd)


@pytest.mark.parametrize("agreement", [0.0, 0.5, 0.9])
def test_agreement_is_the_correlation_of_two_cells_latents(agreement):
    p, n = 0.7, 40000
    m = simulate.correct_matrix([p, p], 1, n, 0.0, agreement, np.random.default_rng(2))
    got = np.mean(~m[0, 0] & ~m[1, 0])
    want = both_wrong(p, agreement)
    assert abs(got - want) < 4 * np.sqrt(want * (1 - want) / n), (got, want)
    # cell by cell: two strategies of one row share only the difficulty, so the same rate
    a = simulate.cell_correct("r", "a", 0, p, 0.0, agreement, n)
    b = simulate.cell_correct("r", "b", 0, p, 0.0, agreement, n)
    got = np.mean(~a & ~b)
    assert abs(got - want) < 4 * np.sqrt(want * (1 - want) / n), (got, want)


def test_cells_are_reproducible_and_independent_where_the_model_says():
    args = dict(accuracy=0.8, seed_sd=0.03, agreement=0.5, n_examples=2000)
    a0 = simulate.cell_correct(7, "a", 0, **args)
    assert np.array_equal(a0, simulate.cell_correct(7, "a", 0, **args))           # same cell, same vector
    assert a0.dtype == bool and a0.shape == (2000,)
    assert not np.array_equal(a0, simulate.cell_correct(7, "a", 1, **args))       # another seed
    assert not np.array_equal(a0, simulate.cell_correct(7, "b", 0, **args))       # another strategy
    assert not np.array_equal(a0, simulate.cell_correct("7", "a", 0, **args))     # 7 and "7" are two rows
    # the difficulty is the row's and the split's; the seed effect is shared by val and test
    assert np.array_equal(simulate.difficulty(7, 50), simulate.difficulty(7, 50, "test"))
    assert not np.allclose(simulate.difficulty(7, 50), simulate.difficulty(7, 50, "val"))
    assert not np.allclose(simulate.difficulty(7, 50), simulate.difficulty(8, 50))
    assert simulate.seed_effect(7, "a", 0, 0.06) == 2 * simulate.seed_effect(7, "a", 0, 0.03)
    # the same rule as the matrix generator, from the cell's own streams
    z = simulate.difficulty(7, 2000)
    e = simulate._rng(simulate._E, simulate.row_digest(7), simulate.strategy_digest("a"), 0, 2).standard_normal(2000)
    assert np.array_equal(a0, simulate.decide(0.8, simulate.seed_effect(7, "a", 0, 0.03), z, e, 0.5))
    # seed effects of different strategies are independent draws
    effects = np.array([[simulate.seed_effect(0, name, s, 1.0) for s in range(300)] for name in "ab"])
    assert abs(np.corrcoef(effects)[0, 1]) < 4 / np.sqrt(300)
    assert abs(effects.std() - 1) < 0.1


def test_row_matrix_stacks_the_cells_and_matches_the_matrix_model():
    acc = {"a": 0.8, "b": 0.7}
    m = simulate.row_matrix("x", acc, [0, 1, 2], 500, 0.03, 0.5)
    assert m.shape == (2, 3, 500)
    assert np.array_equal(m[1, 2], simulate.cell_correct("x", "b", 2, 0.7, 0.03, 0.5, 500))
    # over many rows, the cell-by-cell accuracy is the truth, as the matrix generator's is
    per_row = np.array([simulate.row_matrix(r, {"a": 0.8}, [0, 1], 400, 0.03, 0.5).mean() for r in range(150)])
    assert abs(per_row.mean() - 0.8) < 4 * per_row.std(ddof=1) / np.sqrt(150)


def test_true_accuracy_accounts_for_the_clip():
    assert simulate.true_accuracy(0.8, 0.03) == pytest.approx(0.8, abs=1e-12)
    assert simulate.true_accuracy(0.8, 0.0) == 0.8
    a = np.clip(0.99 + 0.05 * np.random.default_rng(0).standard_normal(400_000), *simulate.CLIP)
    assert simulate.true_accuracy(0.99, 0.05) == pytest.approx(a.mean(), abs=3e-4)
    assert simulate.true_accuracy(0.99, 0.05) < 0.99


def test_bad_model_arguments_are_errors():
    with pytest.raises(ValueError, match="accuracy"):
        simulate.correct_matrix([1.2], 2, 10, 0.0, 0.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="agreement"):
        simulate.cell_correct(0, "a", 0, 0.8, 0.0, 1.0, 10)
    with pytest.raises(TypeError):
        simulate.row_digest(1.5)


# ---------------------------------------------------------------------------- the plugins

def test_inputs_carry_row_split_position_and_label():
    loaded = known_truth.load(known_truth.KnownTruthOptions(examples=50, val_examples=20, classes=4, row="r"))
    assert set(loaded.source) == {"train", "val", "test"} and loaded.classes == ["c0", "c1", "c2", "c3"]
    test = loaded.source["test"]
    assert test.inputs.dtype == torch.uint8 and tuple(test.inputs.shape) == (50, 3, 4, 4)
    info = known_truth.decode(test.inputs[[7, 3]])
    assert info["row"] == simulate.row_digest("r") and info["split"] == simulate.SPLITS["test"]
    assert list(info["index"]) == [7, 3] and list(info["size"]) == [50, 50]
    assert list(info["label"]) == test.labels[[7, 3]].tolist()
    assert np.bincount(test.labels.numpy(), minlength=4).min() >= 12                 # balanced
    assert known_truth.decode(torch.zeros(3, 3, 4, 4, dtype=torch.uint8)) is None   # not its data


def test_dataset_conforms():
    testing.check_dataset_plugin(DATASET, {"examples": 60, "val_examples": 30})


def test_strategy_conforms_on_its_dataset(monkeypatch):
    """The kit runs strategies on handwritten digits; `simulated` runs on known_truth only, so the
    kit's strategy checks get known_truth here (labels poisoned as the kit does: nothing changes)."""
    monkeypatch.setattr(testing, "tiny_digits", lambda *a, **k: known_truth.load(
        known_truth.KnownTruthOptions(examples=60, val_examples=30)))
    testing.check_strategy_plugin(STRATEGY, {"name": "a"})


def test_strategy_is_skipped_on_other_data():
    with pytest.raises(NotApplicable, match="known_truth dataset only"):
        STRATEGY.run(testing.tiny_context(), known_truth.SimulatedOptions(name="a"))


GOOD = {"plugin": "simulated", "label": "good", "name": "good", "accuracy": 0.85, "seed_sd": 0.04, "agreement": 0.6}


def kt_suite(**poor) -> str:
    """Two simulated strategies on two known-truth rows, 3 seeds; ``poor`` sets options of the
    second (``poor``, accuracy 0.6, no seed effect), None leaving one out."""
    second = {"plugin": "simulated", "label": "poor", "name": "poor", "accuracy": 0.6, "seed_sd": 0.0,
              "agreement": 0.6, **poor}
    return testing.tiny_suite([GOOD, {k: v for k, v in second.items() if v is not None}], seeds=(0, 1, 2),
                              suite={"name": "kt", "label_fractions": [0.5, 1.0]}, train={"epochs": 1},
                              dataset={"plugin": "known_truth", "examples": 200, "val_examples": 50, "classes": 5,
                                       "row": [3, "three"]},
                              tables={"executor": {"device": "cpu"}})


def test_run_stores_exactly_the_simulated_cells(cli, write_suite, tmp_path):
    suite = write_suite(kt_suite())
    result = cli("run", suite, "--no-report", *PLUGIN)
    assert result.exit_code == 0, result.output
    store = Store(tmp_path / "results" / "kt", create=False)
    try:
        records, evidence, frame = store.records(), store.evidence(), store.frame()
    finally:
        store.close()
    assert len(records) == 2 * 2 * 3                       # rows × strategies × seeds; one label fraction
    assert {r.status for r in records} == {"ok"} and {r.label_fraction for r in records} == {1.0}
    for r in records:
        d, s = r.config["dataset"], r.config["strategy"]
        for split, n in (("test", 200), ("val", 50)):
            want = simulate.cell_correct(d["row"], s["name"], r.seed, s["accuracy"], s["seed_sd"], s["agreement"],
                                         n, split)
            e = evidence[r.cell_id][split]
            assert np.array_equal(np.sort(e.index), np.arange(n))
            assert np.array_equal(e.correct.astype(bool), want[e.index]), (r.dataset, r.strategy, r.seed, split)
            assert r.metrics[f"{split}_acc"] == pytest.approx(want.mean(), abs=1e-6)
            assert (e.pred[~want[e.index]] != e.label[~want[e.index]]).all()
    # read back as the report reads it: each row compared, each strategy with an interval
    selected = D.select(D.prepare(frame))
    for _, g in selected.groupby(["dataset", "backbone", "label_fraction"]):
        scores = {s: group_scores(gs, "test_acc", evidence) for s, gs in g.groupby("strategy")}
        assert all(sc.per_example and sc.values.shape == (3, 200) for sc in scores.values())
        row = stats.compare_row(scores)
        assert row.best == "good" and [c.told_apart for c in row.comparisons] == [True]  # 25 points apart
        iv = stats.mean_interval(scores["good"])
        assert iv.low < iv.high


@pytest.mark.parametrize("suite, fragments", [
    (kt_suite(accuracy=1.5), ["[[strategy]] #2 (simulated).accuracy", "less than or equal to 1"]),
    (kt_suite(name=None), ["[[strategy]] #2 (simulated).name", "missing"]),
    (kt_suite(agreement=1.0), ["agreement", "less than 1"]),
], ids=["accuracy_above_1", "no_name", "agreement_1"])
def test_bad_option_is_one_error_line_exit_2(cli, write_suite, tmp_path, suite, fragments):
    result = cli("run", write_suite(suite), "--dry-run", *PLUGIN)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("warning: ")]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(f in lines[0] for f in fragments), lines[0]
    assert not (tmp_path / "results").exists()


def test_suite_file_expands_to_distinct_strategies_and_rows():
    from pathlib import Path

    from tlbench.plugins.host import load_registry
    from tlbench.plan.suite import load_suite

    path = Path(__file__).resolve().parents[1] / "suites" / "known-truth.toml"
    registry = load_registry(tuple(PLUGIN[1:]))
    suite = load_suite(path, registry)
    assert {c.strategy.label for c in suite.cells} == set("abcd")
    assert {c.strategy.variant == {} for c in suite.cells} == {True}           # strategies, not variants
    assert len({c.dataset.label for c in suite.cells}) == 40
    assert len(suite.cells) == 40 * 4 * 3
    assert len({c.strategy.options.name for c in suite.cells}) == 4           # independent streams
