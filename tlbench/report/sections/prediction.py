"""Predicted against actual time: the wall time each cell was predicted to take before its run
(``cost.predicted_seconds``, :mod:`tlbench.run.estimate`) beside the time it took."""
from __future__ import annotations

import pandas as pd

from tlbench.report.sections import Section
from tlbench.report.tables import Table, TableCell, fmt_num


def prediction_table(frame: pd.DataFrame, strategies: list[str]) -> Table | None:
    if "predicted_seconds" not in frame.columns:
        return None
    ok = frame[frame["status"] == "ok"].copy()
    ok["predicted_seconds"] = pd.to_numeric(ok["predicted_seconds"], errors="coerce")
    ok = ok[ok["predicted_seconds"].notna() & ok["wall_seconds"].notna()]
    if ok.empty:
        return None
    rank = {s: i for i, s in enumerate(strategies)}
    groups = sorted(ok.groupby(["backbone", "strategy"]), key=lambda kv: (kv[0][0], rank.get(kv[0][1], 99)))
    rows, data = [], []
    for (backbone, strategy), g in [*groups, (("All", ""), ok)]:
        predicted, actual = g["predicted_seconds"].sum(), g["wall_seconds"].sum()
        error = (100 * (g["wall_seconds"] - g["predicted_seconds"]).abs() / g["wall_seconds"]).median()
        ratio = actual / predicted if predicted else float("nan")
        rows.append([TableCell(backbone), TableCell(strategy), TableCell(str(len(g))), TableCell(fmt_num(predicted, 1)),
                     TableCell(fmt_num(actual, 1)), TableCell(fmt_num(ratio, 2)), TableCell(fmt_num(error, 0))])
        data.append({"backbone": backbone, "strategy": strategy, "cells": len(g), "predicted_seconds": predicted,
                     "actual_seconds": actual, "actual_over_predicted": actual / predicted if predicted else None,
                     "median_abs_error_percent": error})
    unpredicted = int((frame["status"] == "ok").sum()) - len(ok)
    cap = ("Each cell's wall time as predicted before its run (from earlier runs on the same kind of device, "
           "`tlbench run --dry-run`) against the time it took, summed per backbone and strategy; the ratio "
           "above 1: slower than predicted; the median of each cell's |actual − predicted| / actual."
           + (f" {unpredicted} ok cell(s) had no prediction (nothing comparable had run before)." if unpredicted
              else ""))
    header = ["Backbone", "Strategy", "Cells", "Predicted (s)", "Actual (s)", "Actual / predicted",
              "Median error (%)"]
    return Table("prediction", "Predicted and actual time", cap, header, rows, pd.DataFrame(data), numeric_from=2,
                 key_cols=1, breaks=[len(rows) - 1])


SECTIONS = [
    Section("prediction", "table", lambda inp: prediction_table(inp.frame, inp.strategies), place="details",
            order=60, missing=None),
]
