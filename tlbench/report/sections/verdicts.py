"""The verdict sentences: one per row of the paired comparison (:mod:`.comparison`), built from
its tests alone, with the budget check's finding (:mod:`.budget_check`) where it changes the
row's verdict. The same sentences close ``tlbench run``."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from tlbench.analysis import stats as S
from tlbench.report import data as D
from tlbench.report import report_input
from tlbench.report.sections import ReportInput, Section
from tlbench.report.sections.budget_check import changed_rows
from tlbench.report.sections.comparison import rows_of, verdict
from tlbench.report.tables import BUDGET_MARK, Table, TableCell


def sentences(inp: ReportInput) -> list[tuple[tuple, str]]:
    """((dataset, backbone, label fraction), sentence) for every compared row."""
    changed = changed_rows(inp)
    out = []
    for row in rows_of(inp):
        key = (row.dataset, row.backbone, row.label_fraction)
        text = verdict(row)
        if key in changed:
            text += f" {BUDGET_MARK} This verdict changes {changed[key]}."
        out.append((key, text))
    return out


def verdicts_table(inp: ReportInput) -> Table | None:
    found = sentences(inp)
    if not found:
        return None
    data = pd.DataFrame([{"dataset": d, "backbone": b, "label_fraction": f, "verdict": v}
                         for (d, b, f), v in found])
    cap = ("One sentence per row of the paired comparison table, built from its tests alone "
           f"(α = {S.ALPHA:g}, Holm–Bonferroni across every pair of the row; a verdict needs "
           f"{S.MIN_SEEDS} shared seeds). “Cannot be told apart” means the test found no "
           f"difference, not that there is none. {BUDGET_MARK}: the budget check re-ran the row "
           "with more compute and the verdict changed.")
    return Table("verdicts", "Verdicts", cap, ["Verdict"], [[TableCell(v)] for _, v in found], data,
                 numeric_from=99)


def row_verdicts(frame: pd.DataFrame, evidence: Mapping | None = None) -> list[tuple[tuple, str]]:
    """((dataset, backbone, label fraction), sentence) for every compared row of a frame of records
    (as :meth:`Store.frame` gives it)."""
    df = D.prepare(frame)
    if not (D.at_budget(df)["status"] == "ok").any():
        return []
    return sentences(report_input(df, Path("."), evidence=evidence))


def verdict_lines(frame: pd.DataFrame, evidence: Mapping | None = None) -> list[str]:
    """The verdict sentences of a frame of records: for the CLI's closing summary."""
    return [text for _, text in row_verdicts(frame, evidence)]


SECTIONS = [Section("verdicts", "table", verdicts_table, order=11)]
