"""Label savings (:func:`tlbench.analysis.savings.label_savings`): how many labels a baseline needs to
match each transfer strategy, as a table ("lora at 5% ≈ scratch at 60%: 12× fewer labels") and
a figure of the ratios."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from tlbench.report import data as D
from tlbench.report.figures import (FigureOut, figure_style, legend_below, new_figure,
                                    panel_title, save_figure)
from tlbench.report.sections import CLASSIFICATION_ONLY, ReportInput, Section
from tlbench.report.sections.data_efficiency import fraction_axis, panel_layout
from tlbench.report.style import ORACLE, PANEL_H, PANEL_W, strategy_color, strategy_marker
from tlbench.report.tables import Table, TableCell
from tlbench.analysis.savings import (AT_OR_BELOW, BEYOND, N_BOOT, LabelSaving, fmt_ratio, label_savings,
                             sentence)

BASELINE = "baseline"


def baselines(inp: ReportInput) -> list[str]:
    """The strategies transfer is compared with: ``--baseline NAME``, else those whose declared
    role is ``baseline``."""
    name = inp.options.baseline
    if name is None:
        return [s for s in inp.strategies if inp.roles.get(s) == BASELINE]
    return [name]


def compared(inp: ReportInput) -> list[str]:
    """The strategies compared with the baselines: every other one but the oracles."""
    base = set(baselines(inp))
    return [s for s in inp.strategies if s not in base and inp.roles.get(s) != ORACLE]


def savings(inp: ReportInput) -> list[LabelSaving]:
    return inp.once("label_savings", lambda: label_savings(
        inp.selected, baselines(inp), compared(inp), inp.evidence))


# ---------------------------------------------------------------------------- table

def _needs(s: LabelSaving) -> str:
    if s.status == BEYOND:
        return f"> {D.fraction_label(s.baseline_max_fraction)}"
    prefix = "≤ " if s.status == AT_OR_BELOW else ""
    return prefix + f"{100 * s.baseline_fraction:.3g}%"


def _ratio_text(s: LabelSaving) -> str:
    """"12× [8×, 20×]", "≤ 1.0×", "> 10×, beyond the measured range [3×, ∞)"."""
    if s.status == BEYOND:
        bound = s.baseline_max_fraction / s.fraction
        text = f"> {fmt_ratio(bound)}, beyond the measured range"
    else:
        text = ("≤ " if s.status == AT_OR_BELOW else "") + fmt_ratio(s.ratio)
    if not math.isnan(s.ratio_low) and not math.isinf(s.ratio_low):
        high = "∞)" if math.isinf(s.ratio_high) else f"{fmt_ratio(s.ratio_high)}]"
        text += f" [{fmt_ratio(s.ratio_low)}, {high}"
    return text


def _lower_bound(s: LabelSaving) -> float:
    """The fewest labels saved that the interval supports (beyond the measured range: the
    baseline's largest budget over the strategy's)."""
    if s.status == BEYOND:
        return s.baseline_max_fraction / s.fraction
    return s.ratio_low


def _supported(s: LabelSaving) -> bool:
    """Whether the interval supports the saving the point estimate shows."""
    if math.isnan(s.ratio_low):
        return False
    if s.status == BEYOND:
        return s.beyond_share >= 0.975
    return s.ratio_low > 1


def savings_table(found: list[LabelSaving]) -> Table:
    rows, breaks, prev = [], [], None
    for i, s in enumerate(found):
        if prev is not None and (s.dataset, s.backbone) != prev:
            breaks.append(i)
        prev = (s.dataset, s.backbone)
        rows.append([TableCell(s.dataset), TableCell(s.backbone), TableCell(s.strategy), TableCell(s.baseline),
                     TableCell(D.fraction_label(s.fraction)), TableCell(f"{100 * s.accuracy:.1f}"),
                     TableCell(_needs(s)),
                     TableCell(_ratio_text(s), bold=_supported(s) and _lower_bound(s) >= 2,
                          muted=not _supported(s), title=sentence(s))])
    data = pd.DataFrame([vars(s) | {"sentence": sentence(s)} for s in found])
    resampled = sorted({s.resampled for s in found if s.resampled})
    how = (f"95% interval in brackets ({N_BOOT:,} draws of each budget's mean from the accuracy "
           f"table's t distribution, over {' / '.join(resampled)}"
           "; ∞: in over 2.5% of them the baseline never gets there)" if resampled else
           "no interval: one seed and no per-example evidence")
    cap = ("How many labels the baseline needs to match each strategy. For a strategy at a label "
           "budget with mean test accuracy a (selected variant, mean over seeds), the baseline's "
           "data-efficiency curve (its mean test accuracy at each measured budget, joined by "
           "straight lines in log label fraction) is read where it first reaches a. Ratio: that "
           "budget over the strategy's (12× = the baseline needs 12 times the labels); "
           f"{how}. ≤: the baseline already reaches a at its smallest budget, so the ratio is at "
           "most this. Beyond the measured range: no measured budget of the baseline reaches a "
           "(> its largest budget), claimed only when 97.5% of the draws agree. Muted: the "
           "interval does not support a saving (it includes 1×, or the baseline may get there "
           "after all). Bold: the whole interval at 2× fewer labels or more.")
    header = ["Dataset", "Backbone", "Strategy", "Baseline", "Labels", "Test acc (%)",
              "Baseline needs", "Labels saved (ratio)"]
    return Table("label_savings", "Label savings: the labels a baseline needs to match transfer",
                 cap, header, rows, data, numeric_from=4, key_cols=2, breaks=breaks)


def _table(inp: ReportInput) -> Table | None:
    found = savings(inp)
    return savings_table(found) if found else None


def _missing(inp: ReportInput) -> str:
    if not baselines(inp):
        return ("No label-savings table or figure: no strategy with the role baseline (e.g. "
                "scratch) in these records; `tlbench report --baseline NAME` names one.")
    return ("No label-savings table or figure: no dataset and backbone where a baseline and a "
            "transfer strategy both have results.")


# ---------------------------------------------------------------------------- figure

def savings_figure(found: list[LabelSaving], strategies: list[str], shift: dict[str, bool],
                   directory: Path) -> FigureOut | None:
    """Per dataset × backbone, the ratio against the first baseline by budget, one line per
    strategy (set a little apart); beyond the measured range drawn as △ at the lower bound
    (largest baseline budget / the strategy's), upper bounds as ▽."""
    if not found:
        return None
    base = found[0].baseline
    frame = pd.DataFrame([vars(s) for s in found if s.baseline == base])
    frame["y"] = np.where(frame["status"] == BEYOND,
                          frame["baseline_max_fraction"] / frame["fraction"], frame["ratio"])
    values = frame[["y", "ratio_low", "ratio_high"]].to_numpy(float)
    values = values[np.isfinite(values) & (values > 0)]
    lo, hi = min(values.min(), 1.0) / 2, max(values.max(), 2.0) * 2
    datasets, backbones = sorted(frame["dataset"].unique()), sorted(frame["backbone"].unique())
    _, panels, nrows, ncols = panel_layout(datasets, backbones)
    present = [s for s in strategies if s in set(frame["strategy"])]
    with figure_style():
        fig = new_figure(max(PANEL_W * ncols, 3.8), PANEL_H * nrows + 0.8)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for idx, (dataset, backbone) in enumerate(panels):
            ax = axes.flat[idx]
            sub = frame[(frame["dataset"] == dataset) & (frame["backbone"] == backbone)]
            here = [s for s in present if s in set(sub["strategy"])]
            for j, s in enumerate(here):
                offset = 10 ** (0.025 * (j - (len(here) - 1) / 2))
                _ratio_line(ax, sub[sub["strategy"] == s].sort_values("fraction"), s, offset, hi)
            ax.set_yscale("log")
            ax.set_ylim(lo, hi)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
            ax.axhline(1.0, color="#888888", lw=0.8, ls=":", zorder=1)
            fraction_axis(ax, sorted(sub["fraction"].unique()), len(here))
            title = panel_title(dataset, None, shift.get(dataset, False))
            ax.set_title(f"{title}\n{backbone}" if len(backbones) > 1 else title)
            ax.set_xlabel("Strategy's labelled fraction (log)")
            ax.set_ylabel(f"{base}'s labels / strategy's" if idx % ncols == 0 else "")
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        handles = [Line2D([], [], color=strategy_color(s), marker=strategy_marker(s), label=s)
                   for s in present]
        handles += [Line2D([], [], color="#555555", marker="^", ls="none", mfc="white",
                           label="more than: beyond the measured range"),
                    Line2D([], [], color="#555555", marker="v", ls="none", mfc="white",
                           label="at most: reached at the smallest budget")]
        legend_below(fig, handles, ncol_max=2 if ncols == 1 else 4)
        png = save_figure(fig, directory, "fig6_label_savings")
    cap = (f"Label savings against {base}: for each strategy and label budget (x), how many "
           f"times its labels {base} needs to reach the same mean test accuracy (y, log; 1 = the "
           "same labels), read off its data-efficiency curve by linear interpolation in log label "
           "fraction. Whiskers: 95% bootstrap interval (cut at the top of the panel where the "
           f"baseline misses in over 2.5% of the replicates). △: {base} never reaches that "
           "accuracy in the measured range, so the ratio is more than its largest budget over the "
           "strategy's (drawn there); ▽: it reaches it at its smallest budget already, so the "
           "ratio is at most that. Strategies are set a little apart on x. The label-savings "
           "table has every number.")
    return FigureOut("fig6_label_savings", "Label savings", cap, png)


def _ratio_line(ax, g: pd.DataFrame, s: str, offset: float, top: float) -> None:
    color = strategy_color(s)
    x, y = g["fraction"].to_numpy(float) * offset, g["y"].to_numpy(float)
    inside = (g["status"] != BEYOND).to_numpy()
    ax.plot(x[inside], y[inside], color=color, lw=1.0, alpha=0.6, zorder=2)
    for xi, yi, row in zip(x, y, g.itertuples(index=False)):
        marker = ("^" if row.status == BEYOND else "v" if row.status == AT_OR_BELOW
                  else strategy_marker(s))
        hollow = row.status in (BEYOND, AT_OR_BELOW)
        ax.plot(xi, yi, marker=marker, color=color, mfc="white" if hollow else color, ls="none",
                zorder=4, clip_on=False)
        if np.isfinite(row.ratio_low):
            ax.plot([xi, xi], [max(row.ratio_low, 1e-12), min(row.ratio_high, top)], color=color,
                    lw=0.9, zorder=3)


SECTIONS = [
    Section("label_savings", "table", _table, missing=_missing, order=60, tasks=CLASSIFICATION_ONLY),
    Section("label_savings_figure", "figure",
            lambda inp: savings_figure(savings(inp), inp.strategies, inp.shift, inp.fig_dir),
            place="figures", order=60, tasks=CLASSIFICATION_ONLY),
]
