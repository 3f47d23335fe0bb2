"""The report's transferability section: tau, weighted tau, exact p-values, table, figure, skips."""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from tlbench.report import write_report
from tlbench.report import transfer as TR
from tlbench.run.store import Store

META = {"suite_name": "t", "suite_toml": "", "environment": {}}
ACC = {  # label fraction 1.0: linear_probe rises b1 < b2 < b3, finetune falls
    ("linear_probe", 1.0): {"b1": .70, "b2": .80, "b3": .90},
    ("finetune", 1.0): {"b1": .90, "b2": .80, "b3": .70},
    ("linear_probe", 0.1): {"b1": .60, "b2": .50, "b3": .40},   # must be ignored: not the largest fraction
}
SCORES = {"logme": {"b1": 1.0, "b2": 2.0, "b3": 3.0},
          "knn": {"b1": .5, "b2": .7, "b3": .6},
          "loss": {"b1": 3.0, "b2": 2.0, "b3": 1.0}}   # lower is better


def frame(acc=ACC) -> pd.DataFrame:
    rows = []
    for (strategy, frac), by_backbone in acc.items():
        for backbone, a in by_backbone.items():
            for seed, noise in ((0, -0.01), (1, 0.01)):
                rows.append(dict(cell_id=f"{strategy}-{frac}-{backbone}-{seed}", backbone=backbone, dataset="d1",
                                 strategy=strategy, variant="{}", seed=seed, label_fraction=frac, status="ok",
                                 error="", test_acc=a + noise, test_macro_f1=a, val_acc=.5,
                                 source_test_acc=math.nan, target_val_acc=math.nan, wall_seconds=1.0,
                                 train_seconds=1.0, images_per_second=10.0, peak_memory_mb=1.0,
                                 trainable_params=10, total_params=100,
                                 device="cpu", has_target_domain=False))
    return pd.DataFrame(rows)


def entries(scores=SCORES):
    return [{"dataset": "d1", "backbone": b, "scorer": s, "value": v, "higher_is_better": s != "loss"}
            for s, by in scores.items() for b, v in by.items()]


def test_tau_and_exact_p_values_by_hand():
    # n = 3: the 6 orderings have tau 1, 1/3, 1/3, -1/3, -1/3, -1
    assert TR.kendall_tau([1, 2, 3], [7, 8, 9]) == pytest.approx(1.0)
    assert TR.kendall_tau([1, 2, 3], [9, 8, 7]) == pytest.approx(-1.0)
    assert TR.kendall_tau([.5, .7, .6], [7, 8, 9]) == pytest.approx(1 / 3)
    assert TR.permutation_p_value([1, 2, 3], [7, 8, 9]) == pytest.approx(1 / 6)
    assert TR.permutation_p_value([.5, .7, .6], [7, 8, 9]) == pytest.approx(3 / 6)
    assert TR.permutation_p_value([1, 2, 3], [8, 7, 9]) == pytest.approx(3 / 6)     # tau = 1/3
    assert TR.permutation_p_value([1, 2, 3], [9, 8, 7]) == pytest.approx(1.0)
    assert TR.permutation_p_value([1, 2, 3, 4], [5, 6, 7, 8]) == pytest.approx(1 / 24)
    assert TR.weighted_tau([1, 2, 3], [7, 8, 9]) == pytest.approx(1.0)
    assert TR.weighted_tau([1, 2, 3], [9, 8, 7]) == pytest.approx(-1.0)
    # a constant score says nothing
    assert math.isnan(TR.kendall_tau([1, 1, 1], [7, 8, 9]))
    assert math.isnan(TR.permutation_p_value([1, 1, 1], [7, 8, 9]))
    assert TR.possible_taus(3) == [Fraction(1), Fraction(1, 3), Fraction(-1, 3), Fraction(-1)]
    assert len(TR.possible_taus(4)) == 7
    note = TR.coarseness_note([3, 4])
    assert "-1, -1/3, 1/3, 1" in note and "1/6" in note and "no result can be significant" in note
    assert "1/24" in note


def test_section_table(tmp_path):
    out = tmp_path / "r"
    write_report(frame(), out, {**META, "transferability": entries()})
    csv = pd.read_csv(out / "report" / "tables" / "transferability.csv")
    row = lambda strategy, scorer: csv[(csv["strategy"] == strategy) & (csv["scorer"] == scorer)].iloc[0]  # noqa
    assert row("linear_probe", "logme")[["kendall_tau", "weighted_tau"]].tolist() == pytest.approx([1, 1])
    assert row("linear_probe", "logme")["p_value"] == pytest.approx(1 / 6)
    assert row("finetune", "logme")["kendall_tau"] == pytest.approx(-1)
    assert row("finetune", "logme")["p_value"] == pytest.approx(1.0)
    assert row("linear_probe", "knn")["kendall_tau"] == pytest.approx(1 / 3)
    assert row("linear_probe", "knn")["p_value"] == pytest.approx(0.5)
    # lower-is-better scores are turned around: loss falls as accuracy rises -> tau = +1
    assert row("linear_probe", "loss")["kendall_tau"] == pytest.approx(1)
    # largest label fraction only; the score's pick and its regret
    assert set(csv["label_fraction"]) == {1.0} and set(csv["n"]) == {3}
    assert row("linear_probe", "logme")["score_pick"] == "b3" and row("finetune", "logme")["score_pick"] == "b3"
    assert row("finetune", "logme")["best_measured"] == "b1"
    md = (out / "report" / "tables" / "transferability.md").read_text()
    assert "1/6" in md and "| d1 | linear_probe | logme | 3 | **+1.00** |" in md
    tex = (out / "report" / "tables" / "transferability.tex").read_text()
    assert "Kendall tau" in tex
    for ext in ("png", "pdf", "svg"):
        assert (out / "report" / "figures" / f"fig5_transferability.{ext}").stat().st_size > 0
    html = (out / "report" / "report.html").read_text()
    assert 'id="tab-transferability"' in html and "Transferability scores vs accuracy" in html


def test_scores_read_from_the_store(tmp_path):
    out = tmp_path / "r"
    assert TR.stored_scores(out, META) == []          # nothing there, and no store made
    assert not out.exists()
    store = Store(out)
    store.set_meta(TR.META_KEY, entries())
    store.close()
    assert TR.stored_scores(out, META) == entries()
    assert TR.stored_scores(out, {**META, TR.META_KEY: entries()[:1]}) == entries()[:1]   # meta wins


def _section(df, scores, directory):
    from tlbench.report import data as D
    from tlbench.analysis.selection import summarize_seeds
    df = D.prepare(df)
    return TR.transfer_section(df, summarize_seeds(D.select(df)), scores, directory)


def test_roles_baseline_and_oracle_left_out(tmp_path):
    df = frame()
    df["role"] = df["strategy"].map({"linear_probe": "transfer", "finetune": "baseline"})
    section = _section(df, entries(), tmp_path)
    assert set(section.table.data["strategy"]) == {"linear_probe"}     # finetune declared a baseline here


def test_skipped_without_scores_or_with_one_backbone(tmp_path):
    out = tmp_path / "none"
    page = write_report(frame(), out, META)        # no scores: no section, no note, no store made
    assert not (out / "report" / "tables" / "transferability.csv").exists()
    assert not list((out / "report" / "figures").glob("fig5_*"))
    assert "transferability" not in page.read_text().lower()
    assert not (out / "tlbench.sqlite").exists()

    one = _section(frame({("linear_probe", 1.0): {"b1": .7}}), entries(), tmp_path / "one")
    assert one.table is None and one.figure is None
    assert one.notes and "no dataset has two backbones" in one.notes[0]

    # scores all missing (None: e.g. LEEP without a source head) count as none
    none_values = [{**e, "value": None} for e in entries()]
    section = TR.transfer_section(None, pd.DataFrame(), none_values, tmp_path)
    assert section.table is None and section.figure is None and section.notes == []


# ---------------------------------------------------------------------------- scores from the run

def test_run_scores_the_features_it_extracted(write_suite, cli):
    """`tlbench run` scores the features its linear-probe cells extracted, so the default report
    has the transferability section without `tlbench rank`."""
    from test_rank import rank_suite
    result = cli("run", write_suite(rank_suite()))
    assert result.exit_code == 0, result.output
    assert "transferability: 2 backbone × dataset pair(s) scored" in result.stdout
    out = Path.cwd() / "results" / "ranked"          # write_suite works in a temporary folder
    entries = TR.stored_scores(out, None)
    assert len(entries) == 2 * 5 and {e["backbone"] for e in entries} == \
        {"tiny_cnn[width=4]", "tiny_cnn[width=8]"}
    table = pd.read_csv(out / "report" / "tables" / "transferability.csv")
    assert set(table["scorer"]) >= {"logme", "hscore", "knn"} and (table["n"] == 2).all()


def test_rank_leaves_pairs_without_features_unscored(tmp_path):
    from test_rank import rank_suite
    from tlbench.plugins.host import load_registry
    from tlbench.run.rank import rank_backbones
    from tlbench.plan.suite import load_suite

    (tmp_path / "s.toml").write_text(rank_suite())
    registry = load_registry()
    suite = load_suite(tmp_path / "s.toml", registry)
    frame = rank_backbones(suite, registry, lambda backbone, dataset: None,
                           labels_of=lambda dataset: pytest.fail("no labels needed"))
    assert (frame["n_train"] == 0).all() and frame["logme"].isna().all()
    assert frame["notes"].str.contains("no features: none were extracted").all()
