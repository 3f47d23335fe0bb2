"""The data-efficiency figure: test accuracy against the labelled fraction, per dataset and
backbone, one line per strategy with its interval over seeds."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from tlbench.report import data as D
from tlbench.report.figures import (FigureOut, figure_style, grid_shape, legend_below,
                                    new_figure, panel_title, pct_axis, save_figure,
                                    strategy_handles)
from tlbench.report.sections import Section
from tlbench.report.style import (PANEL_H, PANEL_W, strategy_color, strategy_linestyle,
                                  strategy_marker)


def panel_layout(datasets: list[str], backbones: list[str]) -> tuple[bool, list, int, int]:
    """(grid, panels, rows, columns): a backbone × dataset grid with margin titles when it fits
    (several backbones, at most 4 datasets), otherwise wrapped (dataset, backbone) panels."""
    if len(backbones) > 1 and len(datasets) <= 4:
        return True, [(d, b) for b in backbones for d in datasets], len(backbones), len(datasets)
    panels = [(d, b) for d in datasets for b in backbones]
    return False, panels, *grid_shape(len(panels))


def fraction_axis(ax, fractions: list[float], n_side_by_side: int) -> None:
    """A log x axis ticked at the measured label fractions."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(fractions))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: D.fraction_label(v)))
    lo, hi = fractions[0], fractions[-1]
    pad = 0.06 * math.log10(hi / lo) if len(fractions) > 1 else 0.025 * (n_side_by_side + 1)
    ax.set_xlim(lo / 10 ** pad, hi * 10 ** pad)


def _curve(ax, g: pd.DataFrame, s: str, role: str | None, offset: float) -> None:
    """One strategy's mean line and its interval (a band, or whiskers where it is patchy)."""
    x, y = g["label_fraction"].to_numpy() * offset, 100 * g["mean"].to_numpy()
    # the accuracy table's intervals (tlbench.analysis.selection.summarize_seeds), already clipped to [0, 1]
    lo = np.clip(100 * g["ci_low"].to_numpy(), 0, 100)
    hi = np.clip(100 * g["ci_high"].to_numpy(), 0, 100)
    color = strategy_color(s)
    ax.plot(x, y, color=color, marker=strategy_marker(s), linestyle=strategy_linestyle(s, role),
            zorder=3, clip_on=False)
    ok = ~np.isnan(lo)
    if ok.sum() >= 2 and ok.all():
        ax.fill_between(x, lo, hi, color=color, alpha=0.16, lw=0, zorder=2)
    elif ok.any():
        ax.errorbar(x[ok], y[ok], yerr=(hi - y)[ok], color=color, lw=1, capsize=2, ls="none",
                    zorder=2)


def data_efficiency(summary: pd.DataFrame, strategies: list[str], shift: dict[str, bool],
                    directory: Path, roles: dict[str, str] | None = None, label: str = "accuracy") -> FigureOut | None:
    """``summary``'s means (the task's test score, called ``label``) against the label fraction;
    ``roles``: strategy -> declared role; oracles are drawn dashed."""
    roles = roles or {}
    if summary.empty:
        return None
    datasets = sorted(summary["dataset"].unique())
    backbones = sorted(summary["backbone"].unique())
    grid, panels, nrows, ncols = panel_layout(datasets, backbones)
    present = [s for s in strategies if s in set(summary["strategy"])]
    with figure_style():
        fig = new_figure(PANEL_W * ncols + (0.25 if grid else 0), PANEL_H * nrows + 0.5)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for idx, (dataset, backbone) in enumerate(panels):
            ax = axes.flat[idx]
            r, c = divmod(idx, ncols)
            sub = summary[(summary["dataset"] == dataset) & (summary["backbone"] == backbone)]
            if sub.empty:  # e.g. a text dataset beside an image backbone: every cell skipped
                ax.set_visible(False)
                continue
            fr = sorted(sub["label_fraction"].unique())
            here = [s for s in present if s in set(sub["strategy"])]
            for j, s in enumerate(here):
                # one fraction: no curve; set the strategies side by side
                offset = 10 ** (0.05 * (j - (len(here) - 1) / 2)) if len(fr) == 1 else 1.0
                _curve(ax, sub[sub["strategy"] == s].sort_values("label_fraction"), s,
                       roles.get(s), offset)
            fraction_axis(ax, fr, len(here))
            pct_axis(ax)
            title = panel_title(dataset, None, shift.get(dataset, False))
            if not grid:
                ax.set_title(title if len(backbones) == 1 else f"{title}\n{backbone}")
            elif r == 0:
                ax.set_title(title)
            if grid and c == ncols - 1:
                ax.annotate(backbone, xy=(1.04, 0.5), xycoords="axes fraction", rotation=-90,
                            ha="left", va="center", fontweight="bold", fontsize=8)
            ax.set_ylabel(f"Test {label} (%)" if c == 0 else "")
            last_row = r == nrows - 1 or idx + ncols >= len(panels)
            ax.set_xlabel("Labelled fraction (log)" if last_row else "")
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        if len(backbones) == 1:
            fig.suptitle(f"Backbone: {backbones[0]}", fontsize=8.5)
        legend_below(fig, strategy_handles(present, roles), ncol_max=max(2, 2 * ncols))
        png = save_figure(fig, directory, "fig1_data_efficiency")
    cap = (f"Test {label} against the fraction of training labels used (log scale), per dataset"
           " and backbone. Lines: mean over seeds of the variant each seed selected on validation; "
           f"bands: the {label} table's 95% interval (the seeds' spread and the test set's noise, "
           f"docs: Statistics; whiskers where a neighbouring point has none). For shift pairs (target) the {label} is "
           "on the target "
           "domain; dashed lines are oracles (role oracle) trained on target labels.")
    return FigureOut("fig1_data_efficiency", "Data efficiency", cap, png)


SECTIONS = [Section(
    "data_efficiency", "figure",
    lambda inp: data_efficiency(inp.summary, inp.strategies, inp.shift, inp.fig_dir, inp.roles, inp.score_label),
    missing="Figure data efficiency: no successful records.", place="figures", order=10)]
