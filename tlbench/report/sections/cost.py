"""Cost: the cost table (time, throughput, memory, parameters per backbone × strategy) and the
cost-versus-accuracy figure with its Pareto frontier."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D

from tlbench.report import data as D
from tlbench.report.figures import (FigureOut, figure_style, freeze_layout, grid_shape,
                                    log_ticks, new_figure, panel_title, pareto_front, pct_axis,
                                    place_labels, save_figure)
from tlbench.report.sections import Section
from tlbench.report.style import PANEL_H, PANEL_W, backbone_markers, strategy_color
from tlbench.report.tables import Table, TableCell, fmt_count, fmt_num

# ---------------------------------------------------------------------------- table


def cost_table(selected: pd.DataFrame, strategies: list[str]) -> Table:
    """Per backbone × strategy: train time, throughput, peak memory, parameters."""
    frame = _cost_frame(selected, strategies)
    energy = bool(frame["energy_joules_mean"].notna().any())
    rows, breaks, prev = [], [], None
    for i, r in enumerate(frame.itertuples(index=False)):
        if prev is not None and r.backbone != prev:
            breaks.append(i)
        prev = r.backbone
        pct = r.trainable_percent
        pct_txt = "–" if math.isnan(pct) else (f"{pct:.2f}" if pct < 10 else f"{pct:.1f}")
        row = [TableCell(r.backbone), TableCell(r.strategy), TableCell(fmt_num(r.train_seconds_mean, 1)),
               TableCell(fmt_num(r.examples_per_second_mean, 0)), TableCell(fmt_num(r.peak_memory_mb_max, 0)),
               TableCell(fmt_count(r.trainable_params_median)), TableCell(fmt_count(r.total_params_median)),
               TableCell(pct_txt)]
        if energy:
            row.append(TableCell(fmt_num(r.energy_joules_mean, 0) + (" *" if r.energy_shared else "")))
        row.append(TableCell(str(r.cells)))
        rows.append(row)
    header = ["Backbone", "Strategy", "Train time (s)", "Examples/s", "Peak memory (MB)",
              "Trainable params", "Total params", "Trainable (%)"]
    header += ["Energy (J)"] * energy + ["Cells"]
    cap = ("Cost of the selected variants, over every successful cell (dataset, label fraction, "
           "seed) of each backbone and strategy: mean training time per cell, mean training "
           "throughput, largest peak memory, and median trainable and total parameters (the "
           "head grows with the number of classes).")
    if energy:
        cap += (" Energy: mean joules per cell from the device's counter (NVML for a GPU, RAPL for the CPU "
                "packages), over the cells that measured it; * the device was shared with other processes during "
                "some of those cells, so the reading includes their energy.")
    return Table("cost", "Cost per strategy", cap, header, rows, frame, numeric_from=2,
                 key_cols=1, breaks=breaks)


def _cost_frame(selected: pd.DataFrame, strategies: list[str]) -> pd.DataFrame:
    records = []
    for (backbone, strat), g in selected.groupby(["backbone", "strategy"]):
        trainable = g["trainable_params"].median()
        total = g["total_params"].median()
        records.append({
            "backbone": backbone, "strategy": strat, "cells": len(g),
            "train_seconds_mean": g["train_seconds"].mean(),
            "examples_per_second_mean": g["examples_per_second"].mean(),
            "peak_memory_mb_max": g["peak_memory_mb"].max(),
            "trainable_params_median": trainable,
            "total_params_median": total,
            "trainable_percent": 100 * trainable / total if total and total > 0 else math.nan,
            "energy_joules_mean": _energy(g).mean(),
            "energy_shared": bool(g.get("energy_shared", pd.Series(dtype=object)).eq(True).any()),
        })
    rank = {s: i for i, s in enumerate(strategies)}
    frame = pd.DataFrame(records)
    return frame.sort_values(["backbone", "strategy"], key=lambda c: c.map(rank)
                             if c.name == "strategy" else c).reset_index(drop=True)


def _energy(frame: pd.DataFrame) -> pd.Series:
    """The frame's energy_joules as numbers (NaN where not measured, or records without the column)."""
    return pd.to_numeric(frame["energy_joules"], errors="coerce") if "energy_joules" in frame.columns \
        else pd.Series(math.nan, index=frame.index)


# ---------------------------------------------------------------------------- figure

COST_AXES = (("seconds", "Training time per run (s, log)"),
             ("params", "Trainable parameters (log)"),
             ("energy", "Energy per run (J, log)"))


def _cost_points(selected: pd.DataFrame, metric: str = "test_acc") -> pd.DataFrame:
    """One point per dataset × backbone × strategy at the dataset's largest label fraction; ``acc``:
    its mean ``metric`` (the task's test score)."""
    top = selected.groupby("dataset")["label_fraction"].transform("max")
    cells = selected[selected["label_fraction"] == top]
    pts = (cells.groupby(["dataset", "backbone", "strategy"])
           .agg(acc=(metric, "mean"), seconds=("train_seconds", "mean"),
                params=("trainable_params", "median"), fraction=("label_fraction", "first"),
                energy=("energy_joules", "mean"))
           .reset_index())
    pts["acc"] *= 100
    pts["params"] = pts["params"].clip(lower=1)
    return pts


def _cost_panel(ax, sub: pd.DataFrame, xcol: str, xlabel: str, bmark: dict,
                oracles: set[str]):
    """Draw one dataset's points against one cost; return the frontier's labels to place."""
    if not (sub[xcol] > 0).any():
        ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center",
                va="center", color="#888888")
        ax.set_xticks([])
    for row in sub.itertuples(index=False):
        if getattr(row, xcol) > 0:
            ax.scatter(getattr(row, xcol), row.acc, s=30, color=strategy_color(row.strategy),
                       marker=bmark[row.backbone], edgecolor="white", linewidth=0.5, zorder=3)
    front = pareto_front(sub[~sub["strategy"].isin(oracles) & (sub[xcol] > 0)], xcol, "acc")
    labels = None
    if len(front):
        ax.plot(front[xcol], front["acc"], color="#555555", lw=0.9, ls=(0, (4, 2)),
                drawstyle="steps-post", zorder=2)
        items = [(getattr(p, xcol), p.acc, p.strategy) for p in front.itertuples(index=False)]
        labels = (ax, items, sub[[xcol, "acc"]].to_numpy(),
                  (front[xcol].to_numpy(), front["acc"].to_numpy()))
    xs = sub[xcol][sub[xcol] > 0]
    if len(xs):
        ax.set_xscale("log")
        lo, hi = xs.min(), xs.max()
        pad = max(math.log10(hi / lo), 0.6)
        ax.set_xlim(lo / 10 ** (0.15 * pad), hi * 10 ** (0.3 * pad))
        log_ticks(ax, *ax.get_xlim())
    ax.margins(y=0.18)
    pct_axis(ax)
    ax.set_xlabel(xlabel)
    return labels


def _cost_legends(fig, present: list[str], backbones: list[str], bmark: dict) -> None:
    handles = [Line2D([], [], color=strategy_color(s), marker="o", ls="none", markersize=5,
                      label=s) for s in present]
    handles.append(Line2D([], [], color="#555555", lw=0.9, ls=(0, (4, 2)),
                          label="Pareto frontier"))
    fig.legend(handles=handles, title="Strategy", loc="outside right upper", frameon=False,
               alignment="left")
    if len(backbones) > 1:
        other = [Line2D([], [], color="#777777", marker=bmark[b], ls="none", markersize=5,
                        label=b) for b in backbones]
        fig.legend(handles=other, title="Backbone", loc="outside right lower", frameon=False,
                   alignment="left")


def cost_accuracy(selected: pd.DataFrame, strategies: list[str], shift: dict[str, bool],
                  directory: Path, metric: str = "test_acc", label: str = "accuracy") -> FigureOut | None:
    """The task's test score (``metric``, called ``label``) against each recorded cost."""
    if selected.empty:
        return None
    pts = _cost_points(selected.assign(energy_joules=_energy(selected)), metric)
    # energy is an axis only when every point measured it (a partial axis would mislead)
    axes_spec = [(col, label) for col, label in COST_AXES
                 if (pts[col] > 0).any() and (col != "energy" or (pts[col] > 0).all())]
    if not axes_spec:
        return None
    oracles = D.oracles(selected)
    datasets = sorted(pts["dataset"].unique())
    backbones = sorted(pts["backbone"].unique())
    bmark = backbone_markers(backbones)
    fracs = pts.groupby("dataset")["fraction"].first()
    same_frac = fracs.nunique() == 1
    nspec = len(axes_spec)
    blocks, ncols = grid_shape(len(datasets))
    with figure_style():
        fig = new_figure(max(PANEL_W * ncols, 4.4) + 1.3, PANEL_H * nspec * blocks + 0.5)
        axes = fig.subplots(nspec * blocks, ncols, squeeze=False)
        labels = []
        for k, dataset in enumerate(datasets):
            b, c = divmod(k, ncols)
            for r, (xcol, xlabel) in enumerate(axes_spec):
                ax = axes[nspec * b + r, c]
                found = _cost_panel(ax, pts[pts["dataset"] == dataset], xcol, xlabel, bmark,
                                    oracles)
                labels += [found] if found else []
                ax.set_ylabel(f"Test {label} (%)" if c == 0 else "")
                if r == 0:
                    title = panel_title(dataset, None, shift.get(dataset, False))
                    if not same_frac:
                        title += f"\n{D.fraction_label(fracs[dataset])} labels"
                    ax.set_title(title)
        for k in range(len(datasets), blocks * ncols):
            b, c = divmod(k, ncols)
            for r in range(nspec):
                axes[nspec * b + r, c].set_visible(False)
        if same_frac:
            fig.suptitle(f"At {D.fraction_label(fracs.iloc[0])} of the labels", fontsize=8.5)
        _cost_legends(fig, [s for s in strategies if s in set(pts["strategy"])], backbones,
                      bmark)
        freeze_layout(fig)
        for ax, items, obstacles, line in labels:
            place_labels(fig, ax, items, obstacles, line)
        png = save_figure(fig, directory, "fig2_cost_accuracy")
    marker_txt = "marker shape: backbone; " if len(backbones) > 1 else ""
    absent = [label.split(" (")[0].lower() for col, label in COST_AXES if (col, label) not in axes_spec]
    rows_txt = ("one row per cost: " + ", ".join(label.split(" (")[0].lower() for _, label in axes_spec)
                + " (log scale)" + (f"; not recorded for every point: {', '.join(absent)}" if absent else ""))
    cap = (f"{label[0].upper() + label[1:]} against cost at each dataset's largest label fraction: {rows_txt}. "
           "One point per "
           f"backbone and strategy, mean over seeds (colour: strategy; {marker_txt}oracles "
           "(role oracle) are left out of the frontier). Dashed: the Pareto frontier, the points no other "
           f"point beats on both cost and {label}; they are labelled.")
    return FigureOut("fig2_cost_accuracy", f"Cost versus {label}", cap, png)


SECTIONS = [
    Section("cost", "table", lambda inp: cost_table(inp.selected, inp.strategies), order=40),
    Section("cost_accuracy", "figure",
            lambda inp: cost_accuracy(inp.selected, inp.strategies, inp.shift, inp.fig_dir, inp.test_metric,
                                      inp.score_label),
            missing="No cost-versus-accuracy figure: no training time or parameter count "
                    "recorded.", place="figures", order=20),
]
