"""The report layer against numbers computed by hand on a small synthetic results set.

Hand computations used below (n = 3 seeds, no per-example evidence, so the intervals are over
seeds only): a bootstrap resample of 3 seeds is all three copies of the smallest value with
probability 1/27 = 3.7% > 2.5%, so the 95% percentile interval is [min, max] of the seeds; the
exact sign-flip test of 3 per-seed differences of one sign gives p = 2/8 = 0.25.
"""
from __future__ import annotations

import json
import logging
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tlbench.analysis.stats import holm

from tlbench.contract.errors import UserError
from tlbench.report import apply_filters, write_report
from tlbench.report import data as D
from tlbench.report import tables as T
from tlbench.report.sections.accuracy import accuracy_table
from tlbench.report.sections.domain_shift import shift_table
from tlbench.report.sections.ranks import rank_table
from tlbench.report.style import order_strategies, strategy_color
from tlbench.analysis.selection import summarize_seeds

NAN = math.nan
LR1, LR2 = json.dumps({"lr": 0.1}), json.dumps({"lr": 0.01})
META = {"suite_name": "tiny-suite", "suite_toml": '[suite]\nname = "tiny-suite"\n',
        "environment": {"python": "3.11", "device": "cpu"}}


ROLES = {"scratch": "baseline", "dann": "adaptation", "target_oracle": "oracle"}


def rec(dataset, strategy, frac, seed, test=NAN, *, val=0.5, status="ok", error="",
        variant="{}", shift=False, source=NAN, train=1.0, mem=50.0, trainable=10, total=5000):
    ok = status == "ok"
    return dict(
        cell_id=f"{dataset}-{strategy}-{variant}-{frac}-{seed}", backbone="bb", dataset=dataset,
        strategy=strategy, role=ROLES.get(strategy, "transfer"), variant=variant, seed=seed,
        label_fraction=frac, status=status,
        error=error, test_acc=test if ok else NAN, test_macro_f1=test - 0.01 if ok else NAN,
        val_acc=val if ok else NAN, source_test_acc=source if ok else NAN,
        target_val_acc=test if (ok and shift) else NAN,
        wall_seconds=train + 1 if ok else NAN, train_seconds=train if ok else NAN,
        examples_per_second=100.0 if ok else NAN, peak_memory_mb=mem if ok else NAN,
        trainable_params=trainable if ok else NAN, total_params=total,
        device="cpu", has_target_domain=shift)


def small_frame() -> pd.DataFrame:
    rows = []
    seeds = [0, 1, 2]
    # d1, 100% labels
    for s, t, v, tr, m in zip(seeds, [.90, .92, .94], [.80, .82, .84], [10, 20, 30],
                              [200, 210, 220]):
        rows.append(rec("d1", "finetune", 1.0, s, t, val=v, variant=LR1, train=tr, mem=m,
                        trainable=1000))
    for s in seeds:  # better on test, worse on validation: must never be selected
        rows.append(rec("d1", "finetune", 1.0, s, .99, val=.70, variant=LR2, train=1000,
                        mem=9999, trainable=1000))
    for s, t in zip(seeds, [.89, .915, .93]):
        rows.append(rec("d1", "linear_probe", 1.0, s, t, val=.75))
    for s, t in zip(seeds, [.95, .85, .90]):
        rows.append(rec("d1", "scratch", 1.0, s, t, val=.6, train=7, mem=80, trainable=5000))
    for s in seeds:
        rows.append(rec("d1", "lora", 1.0, s, status="skipped", error="lora needs peft"))
    # d1, 10% labels
    for s, t in zip(seeds, [.5, .6, .7]):
        rows.append(rec("d1", "finetune", 0.1, s, t, variant=LR1, train=5, mem=100,
                        trainable=1000))
    for s, t in zip(seeds, [.55, .65, .75]):
        rows.append(rec("d1", "linear_probe", 0.1, s, t))
    rows.append(rec("d1", "scratch", 0.1, 0, .3, train=7, mem=80, trainable=5000))
    for s in (1, 2):
        rows.append(rec("d1", "scratch", 0.1, s, status="failed",
                        error="Traceback (most recent call last):\n  File x\nRuntimeError: boom"))
    # s1: a source -> target shift pair, 100% labels
    for s, t, src in zip(seeds, [.6, .62, .64], [.95, .96, .97]):
        rows.append(rec("s1", "finetune", 1.0, s, t, val=.9, variant=LR1, shift=True,
                        source=src, train=40, mem=300, trainable=1200, total=5200))
    for s, t, src in zip(seeds, [.7, .71, .75], [.90, .91, .92]):
        rows.append(rec("s1", "dann", 1.0, s, t, val=.9, shift=True, source=src))
    for s in seeds:
        rows.append(rec("s1", "target_oracle", 1.0, s, .9, val=.9, shift=True, source=.5))
    for s in seeds:
        rows.append(rec("s1", "linear_probe", 1.0, s, status="failed", shift=True,
                        error="RuntimeError: CUDA out of memory"))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("results") / "tiny-suite"
    path = write_report(small_frame(), out, META)
    return path, path.parent


def built_tables():
    df = D.prepare(small_frame())
    selected = D.select(df)
    summary = summarize_seeds(selected)
    strategies = order_strategies(df["strategy"].unique(), D.roles(df))
    return df, selected, summary, strategies


def t_interval(values) -> tuple[float, float]:
    """The seed-level 95% t interval (no per-example evidence) the report must give."""
    v = np.asarray(values, float)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return tuple(np.clip([v.mean() - half, v.mean() + half], 0, 1))


def pct(values) -> str:
    lo, hi = t_interval(values)
    return f"{100 * np.mean(values):.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def row_of(csv: pd.DataFrame, dataset, frac, strategy) -> pd.Series:
    hit = csv[(csv["dataset"] == dataset) & (csv["label_fraction"] == frac)
              & (csv["strategy"] == strategy)]
    assert len(hit) == 1, (dataset, frac, strategy)
    return hit.iloc[0]


# --------------------------------------------------------------------- accuracy table numbers

def test_accuracy_csv_means_cis_selection(report):
    _, rdir = report
    csv = pd.read_csv(rdir / "tables" / "accuracy.csv")
    ft = row_of(csv, "d1", 1.0, "finetune")
    assert ft["variant"] == LR1                      # chosen on validation, not on test
    assert ft["seeds"] == 3
    assert ft["mean"] == pytest.approx(0.92, abs=1e-9)
    assert ft["std"] == pytest.approx(0.02, abs=1e-9)
    assert (ft["ci_low"], ft["ci_high"]) == pytest.approx(t_interval([.90, .92, .94]))
    assert ft["interval"] == "seeds"
    lp = row_of(csv, "d1", 1.0, "linear_probe")
    # mean (0.89 + 0.915 + 0.93) / 3; sd sqrt(((-.021667)^2 + .003333^2 + .018333^2) / 2)
    assert lp["mean"] == pytest.approx(0.911667, abs=1e-6)
    assert (lp["ci_low"], lp["ci_high"]) == pytest.approx(t_interval([.89, .915, .93]))
    # scratch at 10%: one ok seed, two failures: mean of the ok seed only, no interval
    sc = row_of(csv, "d1", 0.1, "scratch")
    assert sc["seeds"] == 1 and sc["mean"] == pytest.approx(0.3) and math.isnan(sc["ci_low"])
    dann = row_of(csv, "s1", 1.0, "dann")
    assert dann["mean"] == pytest.approx(0.72)
    assert (dann["ci_low"], dann["ci_high"]) == pytest.approx(t_interval([.7, .71, .75]))


def test_best_bold_and_seed_level_paired_comparison(report):
    _, rdir = report
    csv = pd.read_csv(rdir / "tables" / "accuracy.csv")
    assert bool(row_of(csv, "d1", 1.0, "finetune")["best"])
    assert bool(row_of(csv, "d1", 0.1, "linear_probe")["best"])
    assert bool(row_of(csv, "s1", 1.0, "dann")["best"])
    oracle = row_of(csv, "s1", 1.0, "target_oracle")       # highest, but an oracle: not best
    assert not bool(oracle["best"])
    comp = pd.read_csv(rdir / "tables" / "comparison.csv")
    # seed-level paired t tests over 3 seeds: linear_probe - finetune at 100%:
    # d = (-.01, -.005, -.01); scratch - finetune: d = (.05, -.07, -.04)
    lp, sc = row_of(comp, "d1", 1.0, "linear_probe"), row_of(comp, "d1", 1.0, "scratch")
    d_lp, d_sc = np.array([-.01, -.005, -.01]), np.array([.05, -.07, -.04])
    p_lp, p_sc = (stats.ttest_1samp(d, 0).pvalue for d in (d_lp, d_sc))
    assert lp["best"] == "finetune" and lp["p"] == pytest.approx(p_lp) and sc["p"] == pytest.approx(p_sc)
    assert not bool(lp["told_apart"]) and not bool(sc["told_apart"]) and not lp["per_example"]
    assert lp["difference"] == pytest.approx(-0.25 / 30)
    # Holm over the row's three pairs (scratch - linear_probe too)
    p_third = stats.ttest_1samp(np.array([.95, .85, .90]) - np.array([.89, .915, .93]), 0).pvalue
    expected = holm([p_lp, p_sc, p_third])
    assert (lp["p_holm"], sc["p_holm"]) == pytest.approx((expected[0], expected[1]))
    # one paired seed: no test at all, never told apart
    sc10 = row_of(comp, "d1", 0.1, "scratch")
    assert sc10["seeds"] == 1 and math.isnan(sc10["p"]) and not bool(sc10["told_apart"])
    # the oracle is compared with dann, never the best
    assert row_of(comp, "s1", 1.0, "target_oracle")["best"] == "dann"


def test_accuracy_markdown_and_latex(report):
    _, rdir = report
    md = (rdir / "tables" / "accuracy.md").read_text()
    lines = {tuple(c.strip() for c in ln.strip("|").split("|")[:3]): ln
             for ln in md.splitlines() if ln.startswith("| d1") or ln.startswith("| s1")}
    header = [c.strip() for c in md.splitlines()[2].strip("|").split("|")]
    assert header == ["Dataset", "Backbone", "Labels", "scratch", "linear_probe", "lora",
                      "finetune", "dann", "target_oracle"]

    def cells(key):
        return [c.strip() for c in lines[key].strip().strip("|").split("|")][3:]

    assert cells(("d1", "bb", "100%")) == [pct([.95, .85, .90]), pct([.89, .915, .93]), "skipped",
                                           f"**{pct([.90, .92, .94])}**", "–", "–"]
    assert cells(("d1", "bb", "10%")) == ["30.0 (n=1)", f"**{pct([.55, .65, .75])}**", "–",
                                          pct([.5, .6, .7]), "–", "–"]
    assert cells(("s1 (target)", "bb", "100%")) == ["–", "failed", "–", pct([.6, .62, .64]),
                                                    f"**{pct([.7, .71, .75])}**", "90.0 [90.0, 90.0]"]
    assert "interval over seeds only" in md and "±" not in md
    tex = (rdir / "tables" / "accuracy.tex").read_text()
    for token in (r"\toprule", r"\midrule", r"\bottomrule", rf"\textbf{{{pct([.90, .92, .94])}}}",
                  pct([.95, .85, .90]), r"target\_oracle", r"\label{tab:accuracy}"):
        assert token in tex, token


def test_single_seed_without_evidence_has_no_interval_and_says_so():
    df = D.prepare(small_frame())
    df = df[df["seed"] == 0]
    selected = D.select(df)
    t = accuracy_table(df, summarize_seeds(selected),
                       order_strategies(df["strategy"].unique(), D.roles(df)))
    assert t.data["ci_low"].isna().all() and "one seed gets none" in t.caption
    assert not any(c.mark for row in t.rows for c in row)


def test_average_rank(report):
    _, rdir = report
    ranks = pd.read_csv(rdir / "tables" / "ranks.csv").set_index("strategy")
    # blocks: d1@10%: linear_probe 1, finetune 2, scratch 3; d1@100%: finetune 1,
    # linear_probe 2, scratch 3; s1@100%: dann 1, finetune 2 (oracle not ranked)
    assert list(ranks.index) == ["dann", "linear_probe", "finetune", "scratch"]
    assert ranks.loc["finetune", "mean_rank[all]"] == pytest.approx(5 / 3)
    assert ranks.loc["linear_probe", "mean_rank[all]"] == pytest.approx(1.5)
    assert ranks.loc["scratch", "mean_rank[all]"] == pytest.approx(3.0)
    assert ranks.loc["dann", "mean_rank[all]"] == pytest.approx(1.0)
    assert ranks.loc["finetune", "blocks"] == 3 and ranks.loc["dann", "blocks"] == 1
    assert ranks.loc["finetune", "mean_rank[labels=100%]"] == pytest.approx(1.5)
    assert ranks.loc["finetune", "mean_rank[labels=10%]"] == pytest.approx(2.0)
    assert "target_oracle" not in ranks.index
    md = (rdir / "tables" / "ranks.md").read_text()
    assert "| dann | **1.00** |" in md


def test_rank_ties_share_average_rank():
    summary = pd.DataFrame({"dataset": ["d"] * 3, "backbone": ["b"] * 3,
                            "label_fraction": [1.0] * 3, "strategy": ["a", "b", "c"],
                            "mean": [0.9, 0.9, 0.5]})
    t = rank_table(summary, ["a", "b", "c"])
    got = t.data.set_index("strategy")["mean_rank[all]"].to_dict()
    assert got == {"a": 1.5, "b": 1.5, "c": 3.0}


def test_cost_table(report):
    _, rdir = report
    cost = pd.read_csv(rdir / "tables" / "cost.csv").set_index("strategy")
    ft = cost.loc["finetune"]
    # selected finetune cells: d1@10% 5,5,5 s; d1@100% 10,20,30 s; s1 40,40,40 s -> 195 / 9
    assert ft["train_seconds_mean"] == pytest.approx(195 / 9)
    assert ft["peak_memory_mb_max"] == 300          # the lr=0.01 variant (9999 MB) not selected
    assert ft["trainable_params_median"] == 1000    # six cells with 1000, three with 1200
    assert ft["total_params_median"] == 5000
    assert ft["trainable_percent"] == pytest.approx(20.0)
    assert ft["cells"] == 9
    lp = cost.loc["linear_probe"]
    assert lp["cells"] == 6 and lp["trainable_percent"] == pytest.approx(0.2)
    md = (rdir / "tables" / "cost.md").read_text()
    assert "| bb | finetune | 21.7 | 100 | 300 | 1k | 5k | 20.0 | 9 |" in md
    assert "GFLOPs" not in md                        # no FLOPs recorded: no column


# --------------------------------------------------------------------- domain shift table

def test_shift_table_gap_closed_oracle_choice_and_forgetting(report):
    page, rdir = report
    # a second DANN variant: worse on source validation, better on the target domain
    extra = [rec("s1", "dann", 1.0, s, .85, val=.8, variant=LR2, shift=True, source=.7)
             for s in (0, 1, 2)]
    df = D.prepare(pd.concat([small_frame(), pd.DataFrame(extra)], ignore_index=True))
    shift = {"s1": True, "d1": False}
    t = shift_table(df, D.select(df), shift)
    assert len(t.data) == 1
    row = t.data.iloc[0]
    assert row["dataset"] == "s1"
    assert (row["source_only_strategy"], row["adaptation_strategy"], row["oracle_strategy"]) == \
        ("finetune", "dann", "target_oracle")                      # by declared role
    assert row["source_only_target_mean"] == pytest.approx(.62)
    assert row["adaptation_target_mean"] == pytest.approx(.72)    # chosen on source validation
    assert row["oracle_target_mean"] == pytest.approx(.9)
    assert row["gap_closed"] == pytest.approx((.72 - .62) / (.9 - .62))
    assert row["adaptation_target_val_selected_mean"] == pytest.approx(.85)  # the oracle choice
    md = T.to_markdown(t)
    assert "**36%**" in md and "85.0 [85.0, 85.0]" in md and "96.0 / 91.0 / 50.0" in md
    # written by the report, shown in the page; no table without a shift pair
    assert (rdir / "tables" / "domain_shift.md").is_file()
    assert "Domain shift: source-only vs adaptation vs oracle" in page.read_text()
    plain = df[df["dataset"] == "d1"]
    assert shift_table(plain, D.select(plain), {"d1": False}) is None


# --------------------------------------------------------------------- failures

def test_failed_and_skipped_section(report):
    page, rdir = report
    fails = pd.read_csv(rdir / "tables" / "failures.csv")
    assert len(fails) == 8
    assert fails["status"].value_counts().to_dict() == {"failed": 5, "skipped": 3}
    assert (fails["error"].str.contains("Traceback")).sum() == 2   # full text kept in CSV
    none = pd.read_csv(rdir / "tables" / "no_success.csv")
    assert set(zip(none["dataset"], none["strategy"], none["status"])) == {
        ("d1", "lora", "skipped×3"), ("s1", "linear_probe", "failed×3")}
    html = page.read_text()
    sec = html[html.index('id="failures"'):html.index('id="suite"')]
    for text in ("RuntimeError: boom", "RuntimeError: CUDA out of memory", "lora needs peft",
                 "Settings without a successful record"):
        assert text in sec
    assert "2 setting(s) have no successful record" in html


def test_status_ok_without_number_is_a_failure_not_a_zero():
    f = small_frame()
    f.loc[(f["strategy"] == "dann") & (f["seed"] == 2), "test_acc"] = NAN
    df = D.prepare(f)
    assert (df[(df["strategy"] == "dann") & (df["seed"] == 2)]["status"] == "failed").all()
    s = summarize_seeds(D.select(df))
    assert s[s["strategy"] == "dann"]["mean"].iloc[0] == pytest.approx(0.705)


# --------------------------------------------------------------------- errors and filters

def test_empty_and_all_failed_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no records to report"):
        write_report(small_frame().iloc[0:0], tmp_path, META)
    failed = small_frame()
    failed["status"] = "failed"
    with pytest.raises(UserError, match="nothing to report: all 36 records") as e:
        write_report(failed, tmp_path, META)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="lack column"):
        write_report(small_frame().drop(columns=["val_acc"]), tmp_path, META)


def test_filter_errors_list_valid_names():
    f = small_frame()
    with pytest.raises(UserError) as e:
        apply_filters(f, {"strategy": ["finetune", "nope"]})
    msg = str(e.value)
    assert "'nope'" in msg and "dann, finetune, linear_probe, lora, scratch, target_oracle" in msg
    assert "\n" not in msg
    with pytest.raises(UserError, match="valid filters: dataset, backbone, strategy"):
        apply_filters(f, {"colour": ["red"]})
    with pytest.raises(UserError, match="matches no records"):
        apply_filters(f, {"dataset": ["s1"], "strategy": ["scratch"]})


def test_filters_select_rows():
    f = small_frame()
    assert apply_filters(f, None) is f
    got = apply_filters(f, {"dataset": ["d1"], "strategy": ["finetune,scratch"]})
    assert set(got["dataset"]) == {"d1"} and set(got["strategy"]) == {"finetune", "scratch"}
    assert len(got) == 6 + 3 + 3 + 3


def test_filtered_report(tmp_path):
    page = write_report(small_frame(), tmp_path, META, filters={"strategy": ["finetune", "dann"]})
    csv = pd.read_csv(tmp_path / "report" / "tables" / "accuracy.csv")
    assert set(csv["strategy"]) == {"finetune", "dann"}
    html = page.read_text()
    assert "Filtered report: strategy = finetune, dann" in html
    # no oracle in the filtered set, but the shift figure still shows source-only vs DANN
    assert (tmp_path / "report" / "figures" / "fig4_domain_shift.png").exists()


# --------------------------------------------------------------------- files and page

def test_files_written(report):
    page, rdir = report
    assert page == rdir / "report.html"
    for name in ("fig1_data_efficiency", "fig2_cost_accuracy", "fig3_overview_heatmap",
                 "fig4_domain_shift", "fig6_label_savings"):
        for ext in ("png", "pdf", "svg"):
            p = rdir / "figures" / f"{name}.{ext}"
            assert p.exists() and p.stat().st_size > 1000, p
    for name in ("accuracy", "macro_f1", "ranks", "cost", "failures", "no_success",
                 "selected_variants", "label_savings"):
        for ext in ("md", "csv", "tex"):
            assert (rdir / "tables" / f"{name}.{ext}").exists(), (name, ext)
    html = page.read_text()
    figures = len(list((rdir / "figures").glob("*.png")))
    assert figures >= 5 and html.count('src="data:image/png;base64,') == figures   # all inlined
    assert not re.search(r'(src|href)="https?://', html)          # nothing fetched
    assert "<link" not in html and "<script src" not in html
    for tid in ("tab-accuracy", "tab-ranks", "tab-cost", "tab-failures"):
        assert f'id="{tid}"' in html
    assert "tiny-suite" in html and "[suite]" in html and "device" in html


def test_rerun_removes_stale_files_and_warns(tmp_path, caplog):
    write_report(small_frame(), tmp_path, META)
    assert (tmp_path / "report" / "figures" / "fig4_domain_shift.png").exists()
    with caplog.at_level(logging.WARNING, logger="tlbench.report"):
        write_report(small_frame(), tmp_path, META, filters={"dataset": ["d1"]})
    assert not (tmp_path / "report" / "figures" / "fig4_domain_shift.png").exists()
    assert "No domain-shift figure" in (tmp_path / "report" / "report.html").read_text()
    # a setting whose records all failed or were skipped is announced, not averaged
    assert any("d1/bb/lora@100% (skipped×3)" in r.getMessage() for r in caplog.records)


def test_colours_stable_and_colour_blind_safe():
    assert strategy_color("finetune") == "#0072B2"        # Okabe-Ito blue
    assert strategy_color("dann") == "#D55E00"            # Okabe-Ito vermillion
    assert strategy_color("someones_adapter") == strategy_color("someones_adapter")
    assert strategy_color("someones_adapter").startswith("#")
    assert order_strategies(["zeta", "target_oracle", "finetune", "alpha", "scratch"],
                            {"target_oracle": "oracle"}) == \
        ["scratch", "finetune", "alpha", "zeta", "target_oracle"]


def test_records_of_two_tasks_get_a_report_each_that_reads_its_own_score(tmp_path):
    """Classification keeps report/; the detection records get report/detection/, whose tables read
    test_ap (not test_acc) and say "per-image AP"; the first page links the second."""
    frame = small_frame().assign(task="classification")
    boxes = []
    for strategy, aps in (("finetune", (.40, .42, .44)), ("head_only", (.20, .22, .24))):
        for seed, ap in enumerate(aps):
            row = rec("scenes", strategy, 1.0, seed) | {"task": "detection", "val_ap": ap, "test_ap": ap,
                                                        "test_map": ap / 4, "test_map50": ap / 2}
            boxes.append(row)
    frame = pd.concat([frame, pd.DataFrame(boxes)], ignore_index=True)
    page = write_report(frame, tmp_path, META)
    assert page == tmp_path / "report" / "report.html"
    second = tmp_path / "report" / "detection" / "report.html"
    assert "detection/report.html" in page.read_text() and second.is_file()
    tables = tmp_path / "report" / "detection" / "tables"
    ap = pd.read_csv(tables / "ap.csv")
    assert set(ap["dataset"]) == {"scenes"} and ap["mean"].max() == pytest.approx(.42)
    assert "per-image AP" in (tables / "ap.md").read_text()
    assert pd.read_csv(tables / "split_metrics.csv")["map"].max() == pytest.approx(.105)
    assert not (tables / "calibration.csv").exists()  # classification's sections stay on its page
    assert "scenes" not in set(pd.read_csv(tmp_path / "report" / "tables" / "accuracy.csv")["dataset"])
