"""The task's metrics of the whole test split (detection: COCO mAP@[.5:.95] and mAP@.5;
segmentation: mean IoU and pixel accuracy; :attr:`tlbench.tasks.task.Task.metrics`), beside its
per-example score: mean over the seeds of the variant each selected on validation, with the 95%
interval over seeds (a split-level number has no per-example evidence). Classification's metric,
macro-F1, has its own table (:mod:`.accuracy`)."""
from __future__ import annotations

import math

import pandas as pd

from tlbench.analysis.selection import summarize_seeds
from tlbench.report import data as D
from tlbench.report.sections import ReportInput, Section
from tlbench.report.tables import Table, TableCell, dataset_label, fmt_acc
from tlbench.tasks import task as tasks

KEY = ["dataset", "backbone", "label_fraction", "strategy"]


def split_metrics_table(inp: ReportInput) -> Table | None:
    if inp.task == "classification":
        return None
    described = tasks.get(inp.task).metrics
    metrics = [m for m in described if f"test_{m}" in inp.selected.columns and inp.selected[f"test_{m}"].notna().any()]
    if not metrics:
        return None
    summaries = {m: {tuple(getattr(r, k) for k in KEY): r for r in summarize_seeds(
        inp.selected.dropna(subset=[f"test_{m}"]), f"test_{m}").itertuples(index=False)} for m in metrics}
    keys = sorted({key for found in summaries.values() for key in found},
                  key=lambda k: (k[0], k[1], k[2], inp.strategies.index(k[3]) if k[3] in inp.strategies else 99))
    rows, records = [], []
    for key in keys:
        dataset, backbone, fraction, strategy = key
        cells = [TableCell(dataset_label(dataset, inp.shift.get(dataset, False))), TableCell(backbone),
                 TableCell(D.fraction_label(fraction)), TableCell(strategy)]
        record = dict(zip(KEY, key))
        for m in metrics:
            r = summaries[m].get(key)
            cells.append(TableCell("–", muted=True) if r is None else TableCell(fmt_acc(r.mean, r.ci_low, r.ci_high)))
            record |= {m: math.nan if r is None else r.mean, f"{m}_low": math.nan if r is None else r.ci_low,
                       f"{m}_high": math.nan if r is None else r.ci_high}
        rows.append(cells)
        records.append(record)
    cap = ("The task's numbers of the whole test split, in %: " + "; ".join(f"{m}: {described[m]}" for m in metrics)
           + ". Mean over seeds of the variant each seed selected on validation [95% interval over the seeds only: "
           f"a number of the whole split has no per-example evidence, so the paired tests use the {inp.score_label} "
           "instead]. One seed: no interval.")
    return Table("split_metrics", f"Test split metrics ({inp.task})", cap,
                 ["Dataset", "Backbone", "Labels", "Strategy"] + metrics, rows, pd.DataFrame(records),
                 numeric_from=4, key_cols=3)


SECTIONS = [Section("split_metrics", "table", split_metrics_table, order=10.5, missing=None)]
