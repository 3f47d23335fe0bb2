"""The report reads each strategy's declared role, never its display label.

A suite may label ``target_oracle`` "oracle-ft" and ``finetune`` "ft": the oracle must still be
left out of bold and ranks and drawn as the oracle, and the domain-shift table must still compare
source-only (a transfer strategy), the adaptation strategy and the oracle.
"""
from __future__ import annotations

import math

import pandas as pd
import pytest

from tlbench.report import data as D
from tlbench.report import tables as T
from tlbench.report.sections.domain_shift import shift_table
from tlbench.report import write_report
from tlbench.report.style import order_strategies, strategy_linestyle
from tlbench.analysis.selection import summarize_seeds
from tlbench.contract.results import CellRecord, columns, flatten

NAN = math.nan


def row(dataset, strategy, role, seed, test, val, *, shift=False, source=NAN, variant="{}"):
    return dict(cell_id=f"{dataset}-{strategy}-{variant}-{seed}", backbone="bb", dataset=dataset,
                strategy=strategy, role=role, variant=variant, seed=seed, label_fraction=1.0,
                status="ok", error="", test_acc=test, test_macro_f1=test, val_acc=val,
                source_test_acc=source, target_val_acc=test if shift else NAN,
                wall_seconds=2.0, train_seconds=1.0, examples_per_second=10.0,
                peak_memory_mb=10.0, trainable_params=10, total_params=100,
                device="cpu", has_target_domain=shift)


def relabelled_frame() -> pd.DataFrame:
    rows = []
    for s in (0, 1, 2):
        # plain dataset: the oracle-labelled row is highest, but it is an oracle
        rows.append(row("d1", "ft", "transfer", s, .80 + .01 * s, .8))
        rows.append(row("d1", "lp", "transfer", s, .70 + .01 * s, .7))
        rows.append(row("d1", "oracle-ft", "oracle", s, .99, .99))
        # a shift pair: two transfer strategies; "lp" has the better SOURCE validation accuracy,
        # "ft" the better target test accuracy: source-only must be chosen without target labels
        rows.append(row("s1", "ft", "transfer", s, .60, .80, shift=True, source=.95))
        rows.append(row("s1", "lp", "transfer", s, .50, .85, shift=True, source=.90))
        rows.append(row("s1", "adapt", "adaptation", s, .70, .80, shift=True, source=.88))
        rows.append(row("s1", "oracle-ft", "oracle", s, .90, .95, shift=True, source=.40))
    return pd.DataFrame(rows)


def test_oracle_found_by_role_not_label(tmp_path):
    frame = relabelled_frame()
    page = write_report(frame, tmp_path, {"suite_name": "roles"})
    tables = tmp_path / "report" / "tables"
    acc = pd.read_csv(tables / "accuracy.csv")
    oracle = acc[acc["strategy"] == "oracle-ft"]
    assert len(oracle) == 2 and not oracle["best"].any()
    assert (oracle["note"] == "oracle").all()
    best = acc[acc["best"]]
    assert sorted(zip(best["dataset"], best["strategy"])) == [("d1", "ft"), ("s1", "adapt")]
    assert "**99.0" not in (tables / "accuracy.md").read_text()
    ranks = pd.read_csv(tables / "ranks.csv")
    assert "oracle-ft" not in set(ranks["strategy"])
    assert set(ranks["strategy"]) == {"ft", "lp", "adapt"}
    assert "oracle-ft is trained on target labels" in page.read_text()
    assert (tmp_path / "report" / "figures" / "fig4_domain_shift.png").is_file()
    shift = pd.read_csv(tables / "domain_shift.csv")
    assert list(shift["oracle_strategy"]) == ["oracle-ft"]


def test_shift_table_by_role():
    df = D.prepare(relabelled_frame())
    t = shift_table(df, D.select(df), {"s1": True, "d1": False})
    assert t is not None and len(t.data) == 1
    r = t.data.iloc[0]
    assert (r["source_only_strategy"], r["adaptation_strategy"], r["oracle_strategy"]) == \
        ("lp", "adapt", "oracle-ft")
    assert r["source_only_target_mean"] == pytest.approx(.50)
    assert r["adaptation_target_mean"] == pytest.approx(.70)
    assert r["oracle_target_mean"] == pytest.approx(.90)
    assert r["gap_closed"] == pytest.approx((.70 - .50) / (.90 - .50))
    assert "best mean source-validation accuracy" in t.caption


def test_one_shift_row_per_adaptation_strategy():
    extra = [row("s1", "adapt2", "adaptation", s, .65, .8, shift=True, source=.9) for s in (0, 1, 2)]
    df = D.prepare(pd.concat([relabelled_frame(), pd.DataFrame(extra)], ignore_index=True))
    t = shift_table(df, D.select(df), {"s1": True, "d1": False})
    assert list(t.data["adaptation_strategy"]) == ["adapt", "adapt2"]
    assert set(t.data["source_only_strategy"]) == {"lp"}


def test_style_by_role():
    roles = {"oracle-ft": "oracle", "ft": "transfer", "zz": "transfer"}
    assert order_strategies(["oracle-ft", "zz", "ft"], roles) == ["ft", "zz", "oracle-ft"]
    assert strategy_linestyle("oracle-ft", "oracle") == "--"
    assert strategy_linestyle("target_oracle", "transfer") == "-"


def test_old_records_without_role_are_transfer():
    df = D.prepare(relabelled_frame().drop(columns=["role"]))
    assert set(df["role"]) == {"transfer"}
    partial = relabelled_frame()
    partial.loc[0, "role"] = None
    assert D.prepare(partial).loc[0, "role"] == "transfer"


def test_store_exports_role():
    assert "role" in columns([])
    assert flatten(CellRecord(cell_id="x", role="oracle"))["role"] == "oracle"
    assert flatten(CellRecord(cell_id="x"))["role"] == "transfer"  # the default role


def test_the_shift_table_shows_what_the_adversary_adds_over_its_control():
    extra = [row("s1", "ctl", "baseline", s, .64, .82, shift=True, source=.9) for s in (0, 1, 2)]
    df = D.prepare(pd.concat([relabelled_frame(), pd.DataFrame(extra)], ignore_index=True))
    t = shift_table(df, D.select(df), {"s1": True, "d1": False})
    r = t.data.iloc[0]
    assert r["control_strategy"] == "ctl" and r["control_target_mean"] == pytest.approx(.64)
    assert r["adversary_effect"] == pytest.approx(.70 - .64)
    assert "+6.0" in T.to_markdown(t) and "lambda = 0" in t.caption
    plain = shift_table(D.prepare(relabelled_frame()), D.select(D.prepare(relabelled_frame())),
                        {"s1": True, "d1": False})
    assert plain.data.iloc[0]["control_strategy"] is None or pd.isna(plain.data.iloc[0]["control_strategy"])
