"""Deployment cost: what each backbone × strategy costs to serve (parameters, bytes, a separate
adapter's bytes, latency at batch 1, throughput), and the edge reading of the Pareto front:
the models no other is both faster at batch 1 and more accurate than."""
from __future__ import annotations

import pandas as pd

from tlbench.report import data as D
from tlbench.report.figures import pareto_front
from tlbench.report.sections import Section
from tlbench.report.tables import Table, TableCell, fmt_count, fmt_num, fmt_score

COLUMNS = ["deployed_params", "deployed_bytes", "adapter_bytes", "latency_ms", "throughput"]


def _measured(selected: pd.DataFrame) -> pd.DataFrame:
    if selected.empty or "latency_ms" not in selected.columns:
        return selected.iloc[0:0]
    frame = selected.copy()
    for col in COLUMNS:
        frame[col] = pd.to_numeric(frame.get(col), errors="coerce")
    return frame[frame["latency_ms"].notna()]


def _top_fraction(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["label_fraction"] == frame.groupby("dataset")["label_fraction"].transform("max")]


def deployment_table(selected: pd.DataFrame, strategies: list[str], metric: str = "test_acc",
                     label: str = "accuracy") -> Table | None:
    """What each backbone × strategy costs to serve, beside its mean ``metric`` (the task's test
    score, called ``label``)."""
    frame = _measured(selected)
    if frame.empty:
        return None
    rank = {s: i for i, s in enumerate(strategies)}
    top = _top_fraction(frame).groupby(["backbone", "strategy"])[metric].mean()
    groups = sorted(frame.groupby(["backbone", "strategy"]), key=lambda kv: (kv[0][0], rank.get(kv[0][1], 99)))
    rows, data, breaks = [], [], []
    for i, ((backbone, strategy), g) in enumerate(groups):
        if i and backbone != groups[i - 1][0][0]:
            breaks.append(i)
        numbers = {col: g[col].median() for col in COLUMNS}
        rows.append([TableCell(backbone), TableCell(strategy), TableCell(fmt_count(numbers["deployed_params"])),
                     TableCell(fmt_num(numbers["deployed_bytes"] / 2**20, 2)),
                     TableCell(fmt_num(numbers["adapter_bytes"] / 2**10, 1)),
                     TableCell(fmt_num(numbers["latency_ms"], 2)), TableCell(fmt_num(numbers["throughput"], 0)),
                     TableCell(fmt_num(100 * top.get((backbone, strategy), float("nan")), 1)), TableCell(str(len(g)))])
        data.append({"backbone": backbone, "strategy": strategy, **numbers,
                     f"{metric}_top_fraction": top.get((backbone, strategy)), "cells": len(g)})
    devices = ", ".join(sorted(set(frame["device"]) - {""})) if "device" in frame.columns else ""
    cap = ("What each model costs to serve, measured on the cell's device after training"
           + (f" ({devices})" if devices else "") + ": parameters and size (MB) of the deployed model "
           "(LoRA merged into the weights; the linear probe as backbone + linear head), the size (KB) of a "
           "separate file of what was trained (LoRA's matrices and head, the probe's head: the deployment as a "
           "shared base plus that file), the median latency of one example (batch 1, after warm-up) and the "
           f"examples per second at the evaluation batch size; medians over cells. {label[0].upper() + label[1:]}: "
           f"mean test {label} at each dataset's largest label fraction.")
    header = ["Backbone", "Strategy", "Params", "Size (MB)", "Adapter (KB)", "Latency (ms)", "Examples/s",
              "Test acc (%)" if label == "accuracy" else f"Test {label} (%)", "Cells"]
    return Table("deployment", "Deployment cost", cap, header, rows, pd.DataFrame(data), numeric_from=2,
                 key_cols=1, breaks=breaks)


def edge_table(selected: pd.DataFrame, metric: str = "test_acc", label: str = "accuracy") -> Table | None:
    """Per dataset, the Pareto front of latency at batch 1 against the task's test score (``metric``,
    called ``label``), as sentences."""
    frame = _measured(selected)
    if frame.empty:
        return None
    oracles = D.oracles(frame)
    points = (_top_fraction(frame[~frame["strategy"].isin(oracles)])
              .groupby(["dataset", "backbone", "strategy"])
              .agg(acc=(metric, "mean"), latency=("latency_ms", "median"), params=("deployed_params", "median"),
                   device=("device", "first"))
              .reset_index())
    points["acc"] *= 100
    rows, data = [], []
    for dataset, sub in points.groupby("dataset"):
        for p in pareto_front(sub, "latency", "acc").itertuples(index=False):
            reading = (f"{p.backbone} + {p.strategy}: {fmt_count(p.params)} params, {fmt_num(p.latency, 1)} ms "
                       f"per image{_on(p.device)}, {fmt_score(p.acc / 100, label)}")
            rows.append([TableCell(dataset), TableCell(reading)])
            data.append({"dataset": dataset, "backbone": p.backbone, "strategy": p.strategy, "params": p.params,
                         "latency_ms": p.latency, metric: p.acc / 100, "device": p.device})
    cap = ("The edge reading of the Pareto front: per dataset, at its largest label fraction, the backbone and "
           f"strategy pairs that no other pair beats on both latency at batch 1 and test {label} (oracles left "
           "out), fastest first.")
    return Table("deployment_edge", f"Fastest models for their {label}", cap, ["Dataset", "Reading"], rows,
                 pd.DataFrame(data), numeric_from=99)


def _on(device: str) -> str:
    """``"cpu: AMD EPYC"`` -> ``" on this CPU (AMD EPYC)"``."""
    kind, _, name = device.partition(": ")
    if not kind:
        return ""
    return f" on this {'CPU' if kind == 'cpu' else 'GPU'}" + (f" ({name})" if name and name != kind else "")


MISSING = ("No deployment cost: no cell measured its deployed model ([suite] measure_deployment = false, or "
           "records from before tlbench 0.3).")

SECTIONS = [
    Section("deployment", "table",
            lambda inp: deployment_table(inp.selected, inp.strategies, inp.test_metric, inp.score_label),
            missing=MISSING, order=42),
    Section("deployment_edge", "table", lambda inp: edge_table(inp.selected, inp.test_metric, inp.score_label),
            order=43),
]
