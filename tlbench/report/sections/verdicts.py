"""The verdict sentences: one per row of the paired comparison (:mod:`.comparison`), built from
its tests alone, with the budget check's finding (:mod:`.budget_check`) where it changes the
row's verdict, and one more for each negative transfer the same tests find. The same sentences
close ``tlbench run``."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from tlbench.analysis import stats as S
from tlbench.report import data as D
from tlbench.report import report_input
from tlbench.report.sections import ReportInput, Section
from tlbench.report.sections.budget_check import changed_rows
from tlbench.report.sections.comparison import Row, p_text, place, rows_of, verdict
from tlbench.report.style import BASELINE, TRANSFER
from tlbench.report.tables import BUDGET_MARK, Table, TableCell, fmt_diff


def negative_transfer(row: Row, roles: Mapping[str, str]) -> list[str]:
    """A sentence for each transfer strategy (role ``transfer``) that the row's paired tests
    tell apart *below* a from-scratch baseline (role ``baseline``): negative transfer."""
    names = [row.result.best] + [c.strategy for c in row.result.comparisons]
    out = []
    for base in (n for n in names if roles.get(n) == BASELINE):
        for name in (n for n in names if roles.get(n) == TRANSFER):
            c = row.result.pair(base, name)
            if c is not None and c.told_apart and c.difference.estimate < 0:
                out.append(f"Negative transfer: {name} is below {base} on "
                           f"{place(row.dataset, row.backbone, row.label_fraction, row.shift)} "
                           f"({fmt_diff(c.difference)} points, {p_text(c.p_holm)} after Holm).")
    return out


def sentences(inp: ReportInput) -> list[tuple[tuple, str]]:
    """((dataset, backbone, label fraction), sentence) for every compared row, followed by its
    negative-transfer sentences."""
    changed = changed_rows(inp)
    out = []
    for row in rows_of(inp):
        key = (row.dataset, row.backbone, row.label_fraction)
        text = verdict(row)
        if key in changed:
            text += f" {BUDGET_MARK} This verdict changes {changed[key]}."
        out.append((key, text))
        out += [(key, t) for t in negative_transfer(row, inp.roles)]
    return out


def sentences_table(name: str, title: str, caption: str,
                    found: list[tuple[tuple, str]]) -> Table | None:
    """A table of ``(dataset, backbone, label fraction), sentence`` pairs, one line each (None
    when there is none)."""
    if not found:
        return None
    data = pd.DataFrame([{"dataset": d, "backbone": b, "label_fraction": f, "verdict": v}
                         for (d, b, f), v in found])
    return Table(name, title, caption, ["Verdict"], [[TableCell(v)] for _, v in found], data,
                 numeric_from=99)


def verdicts_table(inp: ReportInput) -> Table | None:
    cap = ("One sentence per row of the paired comparison table, built from its tests alone "
           f"(α = {S.ALPHA:g}, Holm–Bonferroni across every pair of the row; a verdict needs "
           f"{S.MIN_SEEDS} shared seeds). “Cannot be told apart” means the test found no "
           f"difference, not that there is none. {BUDGET_MARK}: the budget check re-ran the row "
           "with more compute and the verdict changed. “Negative transfer”: a transfer strategy "
           "(role transfer) told apart below a from-scratch baseline (role baseline) of the row "
           "by the same tests.")
    return sentences_table("verdicts", "Verdicts", cap, sentences(inp))


def row_verdicts(frame: pd.DataFrame, evidence: Mapping | None = None) -> list[tuple[tuple, str]]:
    """((dataset, backbone, label fraction), sentence) for every compared row of a frame of records
    (as :meth:`Store.frame` gives it)."""
    df = D.prepare(frame)
    if not (D.at_budget(df)["status"] == "ok").any():
        return []
    return [found for task, rows in df.groupby("task", sort=False) if (D.at_budget(rows)["status"] == "ok").any()
            for found in sentences(report_input(rows, Path("."), evidence=evidence, task=task))]


def verdict_lines(frame: pd.DataFrame, evidence: Mapping | None = None) -> list[str]:
    """The verdict sentences of a frame of records: for the CLI's closing summary."""
    return [text for _, text in row_verdicts(frame, evidence)]


SECTIONS = [Section("verdicts", "table", verdicts_table, order=11)]
