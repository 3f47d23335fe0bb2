"""The report's statistics sections (accuracy intervals, paired comparison, verdicts, the budget
check, the aggregate across tasks) on hand-made records with hand-made per-example evidence, and
their fallback to seed-level numbers for records without evidence."""
from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
import pytest

from tlbench.contract.evidence import SplitEvidence
from tlbench.report import report_input
from tlbench.report import data as D
from tlbench.report import tables as T
from tlbench.report.sections import all_sections, build_sections
from tlbench.report.sections.verdicts import verdict_lines
from tlbench.analysis.selection import summarize_seeds

N = 300
META = {"suite_name": "stats", "suite_toml": "", "environment": {}}
# per strategy: (role, share of the test examples it gets right); the errors are nested, so a
# worse strategy gets wrong every example a better one does, and more
STRATEGIES = {"lora": ("transfer", 0.90), "finetune": ("transfer", 0.80),
              "linear_probe": ("transfer", 0.89), "target_oracle": ("oracle", 0.97)}


def _evidence(acc: float, seed: int) -> SplitEvidence:
    rng = np.random.default_rng(seed)
    right = np.arange(N) < round(acc * N)
    k = round(acc * N)  # seed noise that keeps the count: 3 right examples swapped for wrong ones
    swap = np.r_[rng.choice(k, 3, replace=False), k + rng.choice(N - k, 3, replace=False)]
    right[swap] = ~right[swap]
    label = np.zeros(N, dtype=np.int16)
    order = rng.permutation(N)  # evidence arrives in any order: paired by index
    return SplitEvidence(order.astype(np.int32), label[order],
                         np.where(right, 0, 1).astype(np.int16)[order],
                         np.full(N, 0.9, dtype=np.float16))


def records(backbones=("bb1", "bb2"), fractions=(0.1, 1.0), seeds=(0, 1, 2), rerun=()):
    """Hand-made records; ``rerun``: the (backbone, fraction) rows the budget check re-ran at
    2× the budget, where fine-tuning catches up with LoRA (its verdict changes)."""
    rows, evidence = [], {}
    for b, f, budget in [(b, f, 1.0) for b in backbones for f in fractions] + \
            [(b, f, 2.0) for b, f in rerun]:
            for name, (role, acc) in STRATEGIES.items():
                acc = acc - (0.1 if f < 1 else 0.0) + (0.02 if b == "bb2" else 0.0)
                if budget > 1 and name == "finetune":
                    acc = STRATEGIES["lora"][1]
                for s in seeds:
                    cid = f"{b}-{f}-{name}-{s}-{budget}"
                    ev = _evidence(acc, zlib.crc32(cid.encode()))
                    rows.append(dict(
                        cell_id=cid, backbone=b, dataset="d", strategy=name, role=role,
                        variant="{}", seed=s, label_fraction=f, status="ok", error="",
                        test_acc=float(ev.correct.mean()), test_macro_f1=float(ev.correct.mean()),
                        val_acc=0.5, has_target_domain=False, budget=budget))
                    evidence[cid] = {"test": ev}
    return pd.DataFrame(rows), evidence


MINE = {"accuracy", "comparison", "verdicts", "budget_check", "aggregate", "improvement",
        "aggregate_figure"}


def build(frame, out, evidence=None, names=MINE) -> dict:
    """The named sections of the report of ``frame`` (as ``write_report`` builds them), with
    their tables written under ``out/report/tables``."""
    inp = report_input(D.prepare(frame), out, META, evidence)
    built = {b.section.name: b for b in build_sections(
        inp, [s for s in all_sections() if s.name in names])}
    for b in built.values():
        if isinstance(b.output, T.Table):
            T.write_table(b.output, inp.tab_dir)
    return built


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    frame, evidence = records(rerun={("bb1", 1.0), ("bb2", 1.0)})
    out = tmp_path_factory.mktemp("r") / "stats"
    build(frame, out, evidence)
    return out / "report" / "tables", frame, evidence


def test_accuracy_shows_the_intervals_and_marks_rows_the_budget_check_changes(report):
    tables, _, _ = report
    csv = pd.read_csv(tables / "accuracy.csv")
    assert len(csv) == 16  # the budget check's re-runs are not in the table
    lora = csv[(csv.backbone == "bb1") & (csv.label_fraction == 1.0) & (csv.strategy == "lora")]
    lora = lora.iloc[0]
    assert lora["interval"] == "examples" and lora["ci_low"] < lora["mean"] < lora["ci_high"]
    # 300 shared test examples at 90%, 3 seeds that nearly agree: a few points
    assert 0.02 < lora["ci_high"] - lora["mean"] < 0.08
    md = (tables / "accuracy.md").read_text()
    assert "±" not in md and "] *" not in md
    assert f"{100 * lora['mean']:.1f} [{100 * lora['ci_low']:.1f}, {100 * lora['ci_high']:.1f}]" in md
    assert md.count("100% ‡") == 2 and "‡: the row's verdict changes" in md
    check = pd.read_csv(tables / "budget_check.csv")
    ft = check[(check.backbone == "bb1") & (check.strategy == "finetune")].iloc[0]
    assert ft["gain"] == pytest.approx(0.10, abs=0.02) and ft["gain_low"] > 0
    assert ft["change"].startswith("finetune gains 10.") and ft["p_holm"] < 0.05
    assert ft["one_budget_only"] == "at 1× only: linear_probe > finetune, lora > finetune"


def test_paired_comparison_tells_apart_the_worse_and_not_the_close(report):
    tables, _, _ = report
    csv = pd.read_csv(tables / "comparison.csv")
    row = csv[(csv.backbone == "bb1") & (csv.label_fraction == 1.0)].set_index("strategy")
    assert set(row["best"]) == {"lora"}  # the oracle is higher but never the best
    ft, lp, oracle = row.loc["finetune"], row.loc["linear_probe"], row.loc["target_oracle"]
    assert ft["difference"] == pytest.approx(-0.10, abs=0.02) and bool(ft["told_apart"])
    assert ft["diff_high"] < 0 and ft["p_holm"] < 0.05 and ft["examples"] == N
    assert not bool(lp["told_apart"]) and lp["diff_low"] < 0 < lp["diff_high"] + 1e-9
    assert bool(oracle["told_apart"]) and oracle["difference"] > 0
    md = (tables / "comparison.md").read_text()
    assert "best, " in md and "○" in md and "−10." in md


def test_verdicts_say_only_what_the_tests_say(report):
    tables, frame, evidence = report
    text = (tables / "verdicts.md").read_text()
    line = next(v for v in verdict_lines(frame, evidence) if "bb1 · 100%" in v)
    assert line in text
    assert line.startswith("d · bb1 · 100% of the labels: lora is best, ")
    assert "finetune is 10." in line and "points lower [" in line and "after Holm" in line
    assert "‡ This verdict changes at 2× the budget: finetune gains 10." in line
    assert "linear_probe cannot be told apart from it" in line
    assert "target_oracle (oracle) is " in line and "points higher" in line


def test_aggregate_table_and_figure_across_tasks(report):
    tables, _, _ = report
    agg = pd.read_csv(tables / "aggregate.csv").set_index("strategy")
    assert set(agg.index) == {"lora", "finetune", "linear_probe"}  # the oracle is left out
    assert (agg["tasks"] == 4).all() and (agg["seeds"] == 3).all()
    assert agg.loc["lora", "iqm"] > agg.loc["finetune", "iqm"]
    assert (agg["iqm_low"] <= agg["iqm"]).all() and (agg["iqm"] <= agg["iqm_high"]).all()
    poi = pd.read_csv(tables / "improvement.csv").set_index(["x", "y"])
    assert poi.loc[("lora", "finetune"), "probability"] == 1.0
    assert poi.loc[("finetune", "lora"), "probability"] == 0.0
    assert (tables.parent / "figures" / "fig_aggregate.png").exists()


def test_two_seeds_give_no_verdict_and_say_why(tmp_path):
    frame, evidence = records(backbones=("bb1",), fractions=(1.0,), seeds=(0, 1))
    line = verdict_lines(frame, evidence)[0]
    assert line == ("d · bb1 · 100% of the labels: lora is best, 90.0%; no verdict "
                    "(2 shared seeds: a verdict needs at least 3).")


def test_without_evidence_the_intervals_and_tests_are_seed_level(tmp_path):
    frame, _ = records(backbones=("bb1",), fractions=(1.0,), seeds=(0, 1, 2))
    built = build(frame, tmp_path, None, {"accuracy", "comparison", "aggregate"})
    acc = built["accuracy"].output
    assert "interval over seeds only" in acc.caption
    assert set(acc.data["interval"]) == {"seeds"}
    assert "compared by seed means only" in built["comparison"].output.caption
    assert built["aggregate"].output is None  # one task: no aggregate, and the page says why
    assert "(here 3 strategies on 1 task)" in built["aggregate"].why


def test_summarize_one_seed_with_evidence_still_has_an_interval():
    frame, evidence = records(backbones=("bb1",), fractions=(1.0,), seeds=(0,))
    frame["has_target_domain"] = False
    with_ev = summarize_seeds(frame, "test_acc", evidence)
    without = summarize_seeds(frame, "test_acc")
    assert (with_ev["interval"] == "examples").all() and with_ev["ci_low"].notna().all()
    assert (without["interval"] == "seeds").all() and without["ci_low"].isna().all()
    assert not math.isnan(with_ev["ci_high"].iloc[0])


def test_a_row_trained_at_a_fixed_budget_says_equal_compute(tmp_path):
    frame, evidence = records(backbones=("bb1",), fractions=(1.0,))
    frame["steps"] = [None if s == "linear_probe" else 40 for s in frame["strategy"]]
    plateau = verdict_lines(frame.assign(stop="plateau"), evidence)[0]
    fixed = verdict_lines(frame.assign(stop="budget"), evidence)[0]
    assert "equal compute" not in plateau
    assert fixed.startswith("d · bb1 · 100% of the labels, at equal compute (a fixed budget of steps): lora")
    built = build(frame.assign(stop="budget"), tmp_path, evidence, {"comparison"})
    assert "Rows trained at equal compute" in built["comparison"].output.caption
