"""The overview heatmap: mean test accuracy per strategy × backbone, one panel per dataset."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns

from tlbench.report.figures import (FigureOut, figure_style, grid_shape, new_figure,
                                    panel_title, save_figure)
from tlbench.report.sections import Section
from tlbench.report.style import strategy_color


def _matrix(cellmean, nfrac, expected, dataset, rows, backbones):
    """The panel's values and their annotations ("*": some fractions have no result)."""
    mat = pd.DataFrame(np.nan, index=rows, columns=backbones, dtype=float)
    text = pd.DataFrame("", index=rows, columns=backbones, dtype=object)
    partial = False
    for (d, b, s), v in cellmean.items():
        if d == dataset:
            mat.loc[s, b] = v
            short = nfrac[(d, b, s)] < expected[(d, b)]
            partial |= bool(short)
            text.loc[s, b] = f"{v:.1f}" + ("*" if short else "")
    return mat, text, partial


def _panel(ax, mat, text, vmin, vmax, title, n_backbones) -> None:
    sns.heatmap(mat, ax=ax, vmin=vmin, vmax=vmax, cmap="viridis", annot=text.to_numpy(),
                fmt="", annot_kws={"fontsize": 7}, cbar=False, linewidths=0.8,
                linecolor="white")
    ax.set_facecolor("#eeeeee")
    for i, s in enumerate(mat.index):
        for j, b in enumerate(mat.columns):
            if math.isnan(mat.loc[s, b]):
                ax.text(j + 0.5, i + 0.5, "n/a", ha="center", va="center", fontsize=6.5,
                        color="#888888")
    ax.set_title(title)
    ax.set_xlabel("Backbone")
    ax.set_ylabel("")
    ax.tick_params(axis="x", rotation=0 if n_backbones < 3 else 30, length=0)
    ax.tick_params(axis="y", rotation=0, length=0)
    for lab in ax.get_yticklabels():
        lab.set_color(strategy_color(lab.get_text()))
        lab.set_fontweight("bold")


def overview_heatmap(summary: pd.DataFrame, strategies: list[str], shift: dict[str, bool],
                     directory: Path, label: str = "accuracy") -> FigureOut | None:
    """``summary``'s means (the task's test score, called ``label``) as one heatmap per dataset."""
    if summary.empty:
        return None
    # Each label fraction weighs the same: mean over fractions of the per-fraction means.
    grouped = summary.groupby(["dataset", "backbone", "strategy"])
    cellmean = grouped["mean"].mean() * 100
    nfrac = grouped["label_fraction"].nunique()
    expected = summary.groupby(["dataset", "backbone"])["label_fraction"].nunique()
    datasets = sorted(summary["dataset"].unique())
    backbones = sorted(summary["backbone"].unique())
    rows = [s for s in strategies if s in set(summary["strategy"])]
    vmin, vmax = float(cellmean.min()), float(cellmean.max())
    if vmax - vmin < 1e-9:
        vmin, vmax = vmin - 1, vmax + 1
    nrows, ncols = grid_shape(len(datasets), 4)
    pw = max(0.7 * len(backbones) + 0.35, 1.3)
    ph = 0.27 * len(rows) + 0.75
    partial = False
    with figure_style(), mpl.rc_context({"axes.grid": False}):
        fig = new_figure(pw * ncols + 1.7, ph * nrows + 0.2)
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
        for idx, dataset in enumerate(datasets):
            mat, text, short = _matrix(cellmean, nfrac, expected, dataset, rows, backbones)
            partial |= short
            _panel(axes.flat[idx], mat, text, vmin, vmax,
                   panel_title(dataset, None, shift.get(dataset, False)), len(backbones))
        for ax in axes.flat[len(datasets):]:
            ax.set_visible(False)
        mappable = mpl.cm.ScalarMappable(mpl.colors.Normalize(vmin, vmax), cmap="viridis")
        cb = fig.colorbar(mappable, ax=axes.ravel().tolist(), shrink=0.9, aspect=25, pad=0.02)
        cb.set_label(f"Mean test {label} (%)")
        cb.outline.set_visible(False)
        png = save_figure(fig, directory, "fig3_overview_heatmap")
    cap = (f"Mean test {label} (%) per strategy and backbone, one panel per dataset, averaged "
           "over seeds and label fractions (each fraction weighs the same), for the variant "
           f"selected on validation. Target-domain {label} for shift pairs; n/a: not run or "
           "no successful record.")
    if partial:
        cap += " *: some label fractions have no successful record; mean over the others."
    return FigureOut("fig3_overview_heatmap", "Overview", cap, png)


SECTIONS = [Section(
    "overview", "figure",
    lambda inp: overview_heatmap(inp.summary, inp.strategies, inp.shift, inp.fig_dir, inp.score_label),
    missing="Figure overview: no successful records.", place="figures", order=30)]
