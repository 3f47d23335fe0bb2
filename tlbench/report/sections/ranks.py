"""The average-rank table: each strategy's mean rank by test accuracy across blocks
(dataset × backbone × label fraction), overall and per backbone or label fraction."""
from __future__ import annotations

import math

import pandas as pd

from tlbench.report import data as D
from tlbench.report.sections import ReportInput, Section
from tlbench.report.tables import Table, TableCell

BLOCK = ["dataset", "backbone", "label_fraction"]


def rank_table(summary: pd.DataFrame, strategies: list[str],
               oracles: set[str] = frozenset(), label: str = "accuracy") -> Table | None:
    """Average rank (1 = best mean test score, called ``label``) within each dataset × backbone × fraction;
    ``oracles`` (strategies whose role is oracle) are not ranked. None without a block of two
    strategies."""
    s = summary[~summary["strategy"].isin(oracles)].copy()
    s = s[s.groupby(BLOCK)["strategy"].transform("count") >= 2].copy()
    if s.empty:
        return None
    s["rank"] = s.groupby(BLOCK)["mean"].rank(ascending=False, method="average")
    cols = _columns(s)
    frame = _mean_ranks(s, [x for x in strategies if x in set(s["strategy"])], cols)
    best = {label: frame[f"mean_rank[{label}]"].min() for label, _, _ in cols}
    rows = []
    for rec in frame.to_dict("records"):
        row = [TableCell(rec["strategy"])]
        for label, _, _ in cols:
            v = rec[f"mean_rank[{label}]"]
            row.append(TableCell("–", muted=True) if math.isnan(v) else
                       TableCell(f"{v:.2f}", bold=abs(v - best[label]) <= 1e-12))
        row.append(TableCell(str(rec["blocks"])))
        rows.append(row)
    header = ["Strategy", "Mean rank"] + [lab.split("=", 1)[1] for lab, _, _ in cols[1:]] + \
        ["Blocks"]
    cap = (f"Average rank of each strategy by mean test {label} (1 = best; ties share the "
           f"average rank), over {s.groupby(BLOCK).ngroups} blocks (dataset × backbone × label "
           "fraction) with at least two strategies; a strategy is ranked only in the blocks where "
           "it ran (Blocks column). Columns after Mean rank restrict the average to one backbone "
           "or label fraction. Bold: best in the column.")
    unranked = [x for x in strategies if x in oracles]
    if unranked:
        cap += (f" {', '.join(unranked)} (role oracle) "
                f"{'is' if len(unranked) == 1 else 'are'} not ranked.")
    return Table("ranks", "Average rank across datasets and label fractions", cap, header,
                 rows, frame.reset_index(drop=True), numeric_from=1)


def _columns(s: pd.DataFrame) -> list[tuple[str, str | None, object]]:
    """(label, column, value) of each average: all blocks, then per backbone and per fraction
    where there is more than one."""
    backbones = sorted(s["backbone"].unique())
    fracs = sorted(s["label_fraction"].unique())
    cols = [("all", None, None)]
    if len(backbones) > 1:
        cols += [(f"backbone={b}", "backbone", b) for b in backbones]
    if len(fracs) > 1:
        cols += [(f"labels={D.fraction_label(f)}", "label_fraction", f) for f in fracs]
    return cols


def _mean_ranks(s: pd.DataFrame, order: list[str], cols) -> pd.DataFrame:
    records = []
    for strat in order:
        g = s[s["strategy"] == strat]
        rec = {"strategy": strat, "blocks": len(g)}
        for label, col, val in cols:
            sub = g if col is None else g[g[col] == val]
            rec[f"mean_rank[{label}]"] = sub["rank"].mean() if len(sub) else math.nan
        records.append(rec)
    return pd.DataFrame(records).sort_values(["mean_rank[all]", "strategy"])


def _ranks(inp: ReportInput) -> Table | None:
    return rank_table(inp.summary, inp.strategies, D.oracles(inp.frame), inp.score_label)


SECTIONS = [Section("ranks", "table", _ranks, order=30,
                    missing="No ranks: no setting has two strategies to compare.")]
