"""Forgetting on held-out reference tasks and accuracy on out-of-distribution test sets, measured in
every cell of a suite that asks for them, through `tlbench run`; bad input is one line and exit 2."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from test_suite_errors import assert_user_error
from tlbench.contract import evidence as evidence_mod
from tlbench.plan.suite import parse_suite
from tlbench.plugins.host import load_registry
from tlbench.run.store import Store
from tlbench.testing import tiny_suite

OOD = 'ood = [{plugin = "mnist", image_size = 8, max_per_class = 6}]'
FORGETTING = {"forgetting": {"reference": ["animals"], "examples": 60}}
STRATEGIES = [{"plugin": "linear_probe"}, {"plugin": "finetune", "lr": 3e-3}, {"plugin": "scratch", "lr": 3e-3}]


def retention_suite(ood: str = OOD, tables: dict | None = None, strategies=STRATEGIES, seeds=(0, 1, 2)) -> str:
    text = tiny_suite(strategies, seeds, tables=FORGETTING if tables is None else tables)
    return text.replace('plugin = "digits"\nimage_size = 8\n', f'plugin = "digits"\nimage_size = 8\n{ood}\n', 1)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """One run of a tiny suite with an OOD set and a reference task: its results and evidence."""
    from click.testing import CliRunner

    from tlbench.cli import main
    folder = tmp_path_factory.mktemp("retention")
    path = folder / "suite.toml"
    path.write_text(retention_suite())
    result = CliRunner().invoke(main, ["run", str(path), "--output", str(folder / "results")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = folder / "results" / "kit"
    store = Store(results, create=False)
    return pd.read_csv(results / "results.csv"), store.evidence(), results


def test_the_probe_forgets_exactly_nothing_and_fine_tuning_is_measured(measured):
    frame, evidence, _ = measured
    by = {s: g for s, g in frame.groupby("strategy")}
    assert (by["linear_probe"]["forgetting:animals"] == 0.0).all()
    assert by["finetune"]["forgetting:animals"].notna().all()
    # scratch starts from no pretrained backbone: nothing to forget, nothing measured
    assert by["scratch"]["forgetting:animals"].isna().all()
    assert (by["finetune"]["forgetting_seconds"] > 0).all() and by["scratch"]["forgetting_seconds"].isna().all()
    for r in by["finetune"].itertuples():
        splits = evidence[r.cell_id]
        before, after = splits["reference0:animals"], splits["reference:animals"]
        assert len(before) == len(after) > 0
        assert math.isclose(frame.loc[r.Index, "forgetting:animals"],
                            before.correct.mean() - after.correct.mean(), abs_tol=1e-9)
    # the pretrained probe is the same in every cell: one fit, one set of examples
    firsts = {evidence[c]["reference0:animals"].pred.tobytes() for c in frame["cell_id"]
              if "reference0:animals" in evidence[c]}
    assert len(firsts) == 1


def test_every_cell_is_scored_on_the_ood_set(measured):
    frame, evidence, _ = measured
    assert frame["ood_acc:mnist"].between(0, 1).all()
    for r in frame.itertuples():
        ood = evidence[r.cell_id]["ood:mnist"]
        assert len(ood) == 60  # 6 of each class in MNIST's test split
        assert math.isclose(frame.loc[r.Index, "ood_acc:mnist"], ood.correct.mean(), abs_tol=1e-6)


def test_the_report_shows_forgetting_and_robustness(measured):
    _, _, results = measured
    tables = results / "report" / "tables"
    forgetting = (tables / "forgetting.md").read_text()
    assert "| linear_probe | " in forgetting and "0 (unchanged)" in forgetting
    assert "| scratch |" not in forgetting  # role baseline: not measured
    robustness = pd.read_csv(tables / "robustness.csv")
    assert set(robustness["strategy"]) == {"linear_probe", "finetune", "scratch"}
    assert (robustness["er_ci_low"] <= robustness["effective_robustness"]).all()
    assert (robustness["effective_robustness"] <= robustness["er_ci_high"]).all()
    assert (results / "report" / "figures" / "fig_forgetting_frontier.png").is_file()
    assert (results / "report" / "figures" / "fig_id_ood.png").is_file()


def test_suites_without_them_keep_their_cell_ids():
    registry = load_registry()
    plain = parse_suite(tiny_suite(STRATEGIES), "plain.toml", registry)
    measuring = parse_suite(retention_suite(), "measuring.toml", registry)
    for cell in plain.cells:
        assert "forgetting" not in cell.config() and "ood" not in cell.config()["dataset"]
    # the measurements are part of what a cell is: they change its id
    assert {c.id for c in plain.cells}.isdisjoint({c.id for c in measuring.cells})


def test_kept_evidence_splits():
    assert evidence_mod.kept("ood:mnist") and evidence_mod.kept("reference0:animals")
    assert evidence_mod.kept("test") and not evidence_mod.kept("ood") and not evidence_mod.kept("train")


@pytest.mark.parametrize("text, fragments", [
    (retention_suite(tables={"forgetting": {"reference": ["bbc_news"]}}),
     ["[forgetting].reference", "'bbc_news' is a text dataset", "same modality"]),
    (retention_suite(tables={"forgetting": {"reference": ["digits"]}}),
     ["[forgetting].reference", "'digits' is also a dataset of the suite", "held-out"]),
    (retention_suite(tables={"forgetting": {"reference": []}}), ["[forgetting]", "reference"]),
    (retention_suite(ood='ood = ["bbc_news"]'), ["[[dataset]] #1", ".ood", "text dataset", "modality"]),
    (retention_suite(ood='ood = ["animals"]'), ["[[dataset]] digits", "ood set 'animals'", "other classes"]),
    (retention_suite(ood='ood = [3]'), [".ood[0]", "dataset plugin name"]),
    (retention_suite(ood='ood = ["mnistt"]'), [".ood[0]", "unknown dataset plugin 'mnistt'"]),
])
def test_bad_retention_input(write_suite, cli, text, fragments):
    result = cli("run", write_suite(text), "--dry-run")
    assert_user_error(result, *fragments)


def _simulated(rng, accuracy: float, seeds: int, examples: int, seed_sd: float):
    """Right/wrong of ``seeds`` × ``examples``: each seed's accuracy off by a seed effect of SD
    ``seed_sd`` (seeds that disagree), each example of its own difficulty."""
    from tlbench.analysis.stats import Scores
    difficulty = rng.normal(0, 0.5, examples)
    rows = {}
    for s in range(seeds):
        p = np.clip(accuracy + rng.normal(0, seed_sd) + difficulty * accuracy * (1 - accuracy), 0.01, 0.99)
        rows[s] = (np.arange(examples), (rng.random(examples) < p).astype(float))
    return Scores.from_examples(rows)


def test_effective_robustness_interval_covers_a_point_on_the_trend():
    """Simulated strategies whose OOD accuracy lies exactly on a known trend, seed effects of SD 3
    points: the interval of their effective robustness (trend held fixed, as the report holds it)
    excludes 0 in at most about 5% of rows."""
    from tlbench.analysis import stats as S
    from tlbench.report.sections.robustness import Trend, effective_robustness
    rng = np.random.default_rng(0)
    trend = Trend(intercept=-0.4, slope=0.8, points=6)
    excluded = 0
    reps = 200
    for _ in range(reps):
        id_acc = rng.uniform(0.6, 0.9)
        ood_acc = float(trend(id_acc))
        id_est = S.estimate(_simulated(rng, id_acc, 3, 300, 0.03))
        ood_est = S.estimate(_simulated(rng, ood_acc, 3, 300, 0.03))
        iv = effective_robustness(id_est, ood_est, trend)
        excluded += not (iv.low <= 0 <= iv.high)
    assert excluded / reps <= 0.07, excluded


def test_a_forgetting_of_zero_is_rarely_told_apart_and_a_large_one_is():
    """Per-example forgetting (right before − right after) with seed effects of SD 3 points: with no
    true forgetting the t test calls it at most about 5% of the time; 15 points are nearly always seen."""
    from tlbench.analysis import stats as S
    from tlbench.analysis.stats import Scores
    rng = np.random.default_rng(1)

    def forgetting(true: float) -> Scores:
        before = _simulated(rng, 0.7, 3, 300, 0.0)
        rows = {}
        for i, s in enumerate(before.seeds):
            p_after = np.clip(0.7 - true + rng.normal(0, 0.03), 0.01, 0.99)
            after = (rng.random(300) < p_after).astype(float)
            rows[s] = (before.index, before.values[i] - after)
        return Scores.from_examples(rows)
    reps = 200
    alarms = sum(S.estimate(forgetting(0.0)).p_value() < S.ALPHA for _ in range(reps))
    seen = sum(S.estimate(forgetting(0.15)).p_value() < S.ALPHA for _ in range(50))
    assert alarms / reps <= 0.07, alarms
    assert seen >= 45, seen
