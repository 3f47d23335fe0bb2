"""The report's figures, each saved as PNG (viewing), PDF and SVG (papers).

Figures are drawn on :class:`matplotlib.figure.Figure` objects directly, never through
pyplot, so a report neither needs a display nor disturbs a caller's pyplot state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import (FixedLocator, FuncFormatter, LogLocator, NullFormatter,
                               NullLocator)

from tlbench.report import data as D
from tlbench.report.style import (ORACLE, PANEL_H, PANEL_W, RC, backbone_markers,
                                  strategy_color, strategy_linestyle, strategy_marker)
from tlbench.selection import mean_ci

FORMATS = ("png", "pdf", "svg")


@dataclass
class FigureOut:
    name: str
    title: str
    caption: str
    png: Path


def _style():
    return mpl.rc_context({**sns.axes_style("ticks"), **RC})


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # a canvas of its own: no pyplot, no display
    return fig


def _freeze_layout(fig: Figure) -> None:
    """Solve the constrained layout once and keep it (texts added later do not move axes)."""
    fig.canvas.draw()
    fig.set_layout_engine("none")


def _save(fig: Figure, directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"png": {"Software": None}, "pdf": {"CreationDate": None, "ModDate": None},
            "svg": {"Date": None}}
    for i, ext in enumerate(FORMATS):
        fig.savefig(directory / f"{name}.{ext}", format=ext, metadata=meta[ext])
        if i == 0:  # the layout is solved on the first save; freeze it for the others
            fig.set_layout_engine("none")
    return directory / f"{name}.png"


def _pct_axis(ax, axis: str = "y") -> None:
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def _human(v: float, _pos=None) -> str:
    """Tick label for a count or a duration: 0.5, 20, 300, 20k, 1.5M, 2G."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


def _log_ticks(ax, lo: float, hi: float) -> None:
    """Readable ticks on a log x axis whatever its span: 1-2-5 steps on a short one."""
    span = math.log10(hi / lo) if lo > 0 and hi > 0 else 3
    subs = (1.0,) if span >= 2.5 else (1.0, 3.0) if span >= 1.2 else (1.0, 2.0, 5.0)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(_human))
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10), numticks=12))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _strategy_handles(strategies, roles=None) -> list[Line2D]:
    roles = roles or {}
    return [Line2D([], [], color=strategy_color(s), marker=strategy_marker(s),
                   linestyle=strategy_linestyle(s, roles.get(s)), label=s) for s in strategies]


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _panel_title(dataset: str, backbone: str | None, shift: bool) -> str:
    name = f"{dataset} (target)" if shift else dataset
    return name if backbone is None else f"{name} · {backbone}"


def _legend_below(fig: Figure, handles, ncol_max: int = 4, **kw) -> None:
    fig.legend(handles=handles, loc="outside lower center", frameon=False,
               ncol=min(len(handles), ncol_max), handlelength=2.2, columnspacing=1.2, **kw)


# ---------------------------------------------------------------------------- 1 data efficiency

def data_efficiency(summary: pd.DataFrame, strategies: list[str], shift: dict[str, bool],
                    directory: Path, roles: dict[str, str] | None = None) -> FigureOut | None:
    """``roles``: strategy -> declared role; oracles are drawn dashed."""
    roles = roles or {}
    if summary.empty:
        return None
    datasets = sorted(summary["dataset"].unique())
    backbones = sorted(summary["backbone"].unique())
    # A backbone × dataset grid with margin titles when it fits; otherwise wrapped panels.
    grid = len(backbones) > 1 and len(datasets) <= 4
    if grid:
        panels = [(d, b) for b in backbones for d in datasets]
        nrows, ncols = len(backbones), len(datasets)
    else:
        panels = [(d, b) for d in datasets for b in backbones]
        nrows, ncols = _grid(len(panels))
    present = [s for s in strategies if s in set(summary["strategy"])]
    with _style():
        fig = _new_figure(PANEL_W * ncols + (0.25 if grid else 0), PANEL_H * nrows + 0.5)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for idx, (dataset, backbone) in enumerate(panels):
            ax = axes.flat[idx]
            r, c = divmod(idx, ncols)
            sub = summary[(summary["dataset"] == dataset) & (summary["backbone"] == backbone)]
            fr = sorted(sub["label_fraction"].unique())
            here = [s for s in present if s in set(sub["strategy"])]
            for j, s in enumerate(here):
                g = sub[sub["strategy"] == s].sort_values("label_fraction")
                x, y = g["label_fraction"].to_numpy(), 100 * g["mean"].to_numpy()
                if len(fr) == 1:  # one fraction: no curve; set the strategies side by side
                    x = x * 10 ** (0.05 * (j - (len(here) - 1) / 2))
                # accuracy lives in [0, 100]: with few seeds a Student-t interval reaches past it
                lo = np.clip(100 * g["ci_low"].to_numpy(), 0, 100)
                hi = np.clip(100 * g["ci_high"].to_numpy(), 0, 100)
                color = strategy_color(s)
                ax.plot(x, y, color=color, marker=strategy_marker(s),
                        linestyle=strategy_linestyle(s, roles.get(s)), zorder=3, clip_on=False)
                ok = ~np.isnan(lo)
                if ok.sum() >= 2 and ok.all():
                    ax.fill_between(x, lo, hi, color=color, alpha=0.16, lw=0, zorder=2)
                elif ok.any():
                    ax.errorbar(x[ok], y[ok], yerr=(hi - y)[ok], color=color, lw=1,
                                capsize=2, ls="none", zorder=2)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(FixedLocator(fr))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: D.fraction_label(v)))
            pad = 0.06 * math.log10(fr[-1] / fr[0]) if len(fr) > 1 else 0.025 * (len(here) + 1)
            ax.set_xlim(fr[0] / 10 ** pad, fr[-1] * 10 ** pad)
            _pct_axis(ax)
            if grid:
                if r == 0:
                    ax.set_title(_panel_title(dataset, None, shift.get(dataset, False)))
                if c == ncols - 1:
                    ax.annotate(backbone, xy=(1.04, 0.5), xycoords="axes fraction",
                                rotation=-90, ha="left", va="center", fontweight="bold",
                                fontsize=8)
            else:
                title = _panel_title(dataset, None, shift.get(dataset, False))
                ax.set_title(title if len(backbones) == 1 else f"{title}\n{backbone}")
            ax.set_ylabel("Test accuracy (%)" if c == 0 else "")
            last_row = r == nrows - 1 or idx + ncols >= len(panels)
            ax.set_xlabel("Labelled fraction (log)" if last_row else "")
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        if len(backbones) == 1:
            fig.suptitle(f"Backbone: {backbones[0]}", fontsize=8.5)
        _legend_below(fig, _strategy_handles(present, roles), ncol_max=max(2, 2 * ncols))
        png = _save(fig, directory, "fig1_data_efficiency")
    cap = ("Test accuracy against the fraction of training labels used (log scale), per dataset"
           " and backbone. Lines: mean over seeds of the variant selected on validation; bands:"
           " 95% Student-t confidence interval over seeds, clipped to [0, 100] (whiskers where a point has fewer "
           "than 2 seeds around it). For shift pairs (target) the accuracy is on the target "
           "domain; dashed lines are oracles (role oracle) trained on target labels.")
    return FigureOut("fig1_data_efficiency", "Data efficiency", cap, png)


# ---------------------------------------------------------------------------- 2 cost vs accuracy

def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Points that no other point beats on both lower ``x`` and higher ``y``, by ascending x."""
    pts = points.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, False])
    keep, best = [], -math.inf
    for i, r in pts.iterrows():
        if r[y] > best:
            keep.append(i)
            best = r[y]
    return pts.loc[keep]


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


# (dx, dy) in points, horizontal and vertical alignment of the label
_CANDIDATES = [(5, -4, "left", "top"), (5, 4, "left", "bottom"), (-5, 4, "right", "bottom"),
               (-5, -4, "right", "top"), (0, 7, "center", "bottom"), (0, -7, "center", "top"),
               (8, 0, "left", "center"), (-8, 0, "right", "center")]


def _step_samples(ax, xs, ys, n: int = 40) -> np.ndarray:
    """Display-space points along a steps-post line through (xs, ys), to keep labels off it."""
    pts = ax.transData.transform(np.column_stack([xs, ys]).astype(float))
    out = []
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
        out += [(x, y0) for x in np.linspace(x0, x1, n)] + [(x1, y) for y in np.linspace(y0, y1, n)]
    return np.asarray(out).reshape(-1, 2)


def _place_labels(fig: Figure, ax, items, obstacles_xy, line_xy=None) -> None:
    """Label points without overlapping each other, other points, a line or the axes edge.

    ``items``: (x, y, text) in data coordinates; ``obstacles_xy``: every plotted point;
    ``line_xy``: (xs, ys) of the frontier line.
    Greedy: for each label the first candidate position that collides with nothing, else
    the one that collides least. Needs the figure's layout to be final.
    """
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    r = 4.0 * fig.dpi / 72
    from matplotlib.transforms import Bbox
    obstacles = [Bbox.from_extents(px - r, py - r, px + r, py + r)
                 for px, py in ax.transData.transform(np.asarray(obstacles_xy, float))]
    if line_xy is not None and len(line_xy[0]) > 1:
        q = 1.0
        obstacles += [Bbox.from_extents(px - q, py - q, px + q, py + q)
                      for px, py in _step_samples(ax, *line_xy)]
    placed = []
    for x, y, text in items:
        best, best_cost = None, math.inf
        for dx, dy, ha, va in _CANDIDATES:
            t = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                            ha=ha, va=va, fontsize=6.2, color="#222222", zorder=6,
                            annotation_clip=False)
            bb = t.get_window_extent(renderer).padded(1.5)
            outside = (max(0, box.x0 - bb.x0) + max(0, bb.x1 - box.x1)) * bb.height + \
                      (max(0, box.y0 - bb.y0) + max(0, bb.y1 - box.y1)) * bb.width
            cost = 4 * outside + sum(_overlap(bb, o) for o in placed) * 3 + \
                sum(_overlap(bb, o) for o in obstacles)
            if cost < best_cost:
                if best is not None:
                    best[0].remove()
                best, best_cost = (t, bb), cost
            else:
                t.remove()
            if cost == 0:
                break
        placed.append(best[1])


def cost_accuracy(selected: pd.DataFrame, strategies: list[str], shift: dict[str, bool],
                  directory: Path) -> FigureOut | None:
    if selected.empty:
        return None
    top = selected.groupby("dataset")["label_fraction"].transform("max")
    cells = selected[selected["label_fraction"] == top]
    oracles = D.oracles(selected)
    pts = (cells.groupby(["dataset", "backbone", "strategy"])
           .agg(acc=("test_acc", "mean"), seconds=("train_seconds", "mean"),
                params=("trainable_params", "median"), fraction=("label_fraction", "first"))
           .reset_index())
    pts["acc"] *= 100
    pts["params"] = pts["params"].clip(lower=1)
    datasets = sorted(pts["dataset"].unique())
    backbones = sorted(pts["backbone"].unique())
    bmark = backbone_markers(backbones)
    present = [s for s in strategies if s in set(pts["strategy"])]
    fracs = pts.groupby("dataset")["fraction"].first()
    same_frac = fracs.nunique() == 1
    axes_spec = [(col, label) for col, label in
                 (("seconds", "Training time per run (s, log)"),
                  ("params", "Trainable parameters (log)")) if (pts[col] > 0).any()]
    if not axes_spec:
        return None
    nspec = len(axes_spec)
    blocks, ncols = _grid(len(datasets))
    with _style():
        fig = _new_figure(max(PANEL_W * ncols, 4.4) + 1.3, PANEL_H * nspec * blocks + 0.5)
        axes = fig.subplots(nspec * blocks, ncols, squeeze=False)
        labels = []
        for k, dataset in enumerate(datasets):
            b, c = divmod(k, ncols)
            sub = pts[pts["dataset"] == dataset]
            for r, (xcol, xlabel) in enumerate(axes_spec):
                ax = axes[nspec * b + r, c]
                if not (sub[xcol] > 0).any():
                    ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center",
                            va="center", color="#888888")
                    ax.set_xticks([])
                for row in sub.itertuples(index=False):
                    if not getattr(row, xcol) > 0:
                        continue
                    ax.scatter(getattr(row, xcol), row.acc, s=30,
                               color=strategy_color(row.strategy), marker=bmark[row.backbone],
                               edgecolor="white", linewidth=0.5, zorder=3)
                front = pareto_front(sub[~sub["strategy"].isin(oracles) & (sub[xcol] > 0)], xcol,
                                     "acc")
                if len(front):
                    ax.plot(front[xcol], front["acc"], color="#555555", lw=0.9, ls=(0, (4, 2)),
                            drawstyle="steps-post", zorder=2)
                    items = [(getattr(p, xcol), p.acc, p.strategy)
                             for p in front.itertuples(index=False)]
                    labels.append((ax, items, sub[[xcol, "acc"]].to_numpy(),
                                   (front[xcol].to_numpy(), front["acc"].to_numpy())))
                xs = sub[xcol][sub[xcol] > 0]
                if len(xs):
                    ax.set_xscale("log")
                    lo, hi = xs.min(), xs.max()
                    pad = max(math.log10(hi / lo), 0.6)
                    ax.set_xlim(lo / 10 ** (0.15 * pad), hi * 10 ** (0.3 * pad))
                    _log_ticks(ax, *ax.get_xlim())
                ax.margins(y=0.18)
                _pct_axis(ax)
                ax.set_xlabel(xlabel)
                ax.set_ylabel("Test accuracy (%)" if c == 0 else "")
                if r == 0:
                    title = _panel_title(dataset, None, shift.get(dataset, False))
                    if not same_frac:
                        title += f"\n{D.fraction_label(fracs[dataset])} labels"
                    ax.set_title(title)
        for k in range(len(datasets), blocks * ncols):
            b, c = divmod(k, ncols)
            for r in range(nspec):
                axes[nspec * b + r, c].set_visible(False)
        if same_frac:
            fig.suptitle(f"At {D.fraction_label(fracs.iloc[0])} of the labels", fontsize=8.5)
        strat_handles = [Line2D([], [], color=strategy_color(s), marker="o", ls="none",
                                markersize=5, label=s) for s in present]
        strat_handles.append(Line2D([], [], color="#555555", lw=0.9, ls=(0, (4, 2)),
                                    label="Pareto frontier"))
        fig.legend(handles=strat_handles, title="Strategy", loc="outside right upper",
                   frameon=False, alignment="left")
        if len(backbones) > 1:
            other = [Line2D([], [], color="#777777", marker=bmark[b], ls="none",
                            markersize=5, label=b) for b in backbones]
            fig.legend(handles=other, title="Backbone", loc="outside right lower",
                       frameon=False, alignment="left")
        _freeze_layout(fig)
        for ax, items, obstacles, line in labels:
            _place_labels(fig, ax, items, obstacles, line)
        png = _save(fig, directory, "fig2_cost_accuracy")
    marker_txt = "marker shape: backbone; " if len(backbones) > 1 else ""
    rows_txt = (("top row training time per run, bottom row trainable parameters (both log "
                 "scale)") if nspec == 2 else f"{axes_spec[0][1].lower()}; the other cost was "
                "not recorded")
    cap = (f"Accuracy against cost at each dataset's largest label fraction: {rows_txt}. "
           "One point per "
           f"backbone and strategy, mean over seeds (colour: strategy; {marker_txt}oracles "
           "(role oracle) are left out of the frontier). Dashed: the Pareto frontier, the points no other "
           "point beats on both cost and accuracy; they are labelled.")
    return FigureOut("fig2_cost_accuracy", "Cost versus accuracy", cap, png)


# ---------------------------------------------------------------------------- 3 heatmap

def overview_heatmap(summary: pd.DataFrame, strategies: list[str], shift: dict[str, bool],
                     directory: Path) -> FigureOut | None:
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
    nrows, ncols = _grid(len(datasets), 4)
    pw = max(0.7 * len(backbones) + 0.35, 1.3)
    ph = 0.27 * len(rows) + 0.75
    partial = False
    with _style(), mpl.rc_context({"axes.grid": False}):
        fig = _new_figure(pw * ncols + 1.7, ph * nrows + 0.2)
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
        for idx, dataset in enumerate(datasets):
            ax = axes.flat[idx]
            mat = pd.DataFrame(np.nan, index=rows, columns=backbones, dtype=float)
            text = pd.DataFrame("", index=rows, columns=backbones, dtype=object)
            for (d, b, s), v in cellmean.items():
                if d == dataset:
                    mat.loc[s, b] = v
                    short = nfrac[(d, b, s)] < expected[(d, b)]
                    partial |= bool(short)
                    text.loc[s, b] = f"{v:.1f}" + ("*" if short else "")
            sns.heatmap(mat, ax=ax, vmin=vmin, vmax=vmax, cmap="viridis", annot=text.to_numpy(),
                        fmt="", annot_kws={"fontsize": 7}, cbar=False, linewidths=0.8,
                        linecolor="white")
            ax.set_facecolor("#eeeeee")
            for i, s in enumerate(rows):
                for j, b in enumerate(backbones):
                    if math.isnan(mat.loc[s, b]):
                        ax.text(j + 0.5, i + 0.5, "n/a", ha="center", va="center",
                                fontsize=6.5, color="#888888")
            ax.set_title(_panel_title(dataset, None, shift.get(dataset, False)))
            ax.set_xlabel("Backbone")
            ax.set_ylabel("")
            ax.tick_params(axis="x", rotation=0 if len(backbones) < 3 else 30, length=0)
            ax.tick_params(axis="y", rotation=0, length=0)
            for lab in ax.get_yticklabels():
                lab.set_color(strategy_color(lab.get_text()))
                lab.set_fontweight("bold")
        for ax in axes.flat[len(datasets):]:
            ax.set_visible(False)
        mappable = mpl.cm.ScalarMappable(mpl.colors.Normalize(vmin, vmax), cmap="viridis")
        cb = fig.colorbar(mappable, ax=axes.ravel().tolist(), shrink=0.9, aspect=25, pad=0.02)
        cb.set_label("Mean test accuracy (%)")
        cb.outline.set_visible(False)
        png = _save(fig, directory, "fig3_overview_heatmap")
    cap = ("Mean test accuracy (%) per strategy and backbone, one panel per dataset, averaged "
           "over seeds and label fractions (each fraction weighs the same), for the variant "
           "selected on validation. Target-domain accuracy for shift pairs; n/a: not run or "
           "no successful record.")
    if partial:
        cap += " *: some label fractions have no successful record; mean over the others."
    return FigureOut("fig3_overview_heatmap", "Overview", cap, png)


# ---------------------------------------------------------------------------- 4 domain shift

def domain_shift(selected: pd.DataFrame, shift: dict[str, bool],
                 directory: Path) -> FigureOut | None:
    """Source-only vs adaptation vs oracle bars, the strategies found by declared role
    (:func:`D.shift_picks`)."""
    picks = D.shift_picks(selected, shift)
    sel = D.shift_rows(selected, picks)
    if sel.empty:
        return None
    top = sel.groupby("dataset")["label_fraction"].transform("max")
    sel = sel[sel["label_fraction"] == top]
    datasets = sorted(sel["dataset"].unique())
    backbones = sorted(sel["backbone"].unique())
    roles = D.roles(sel)
    # one bar slot per role: source-only (a transfer strategy), each adaptation, the oracle
    adaptations = sorted(s for s, r in roles.items() if r == "adaptation")
    slots = ["source-only"] + adaptations + ["oracle"]

    def slot_strategy(slot, dataset, backbone, frac):
        pick = picks.get((dataset, backbone, frac))
        if pick is None:
            return None
        if slot == "source-only":
            return pick.source_only
        if slot == "oracle":
            return pick.oracle
        return slot if slot in pick.adaptation else None
    present = [sl for sl in slots if any(
        slot_strategy(sl, d, b, f) is not None
        for d, b, f in sel[["dataset", "backbone", "label_fraction"]].drop_duplicates()
        .itertuples(index=False))]
    drawn = {}  # strategy -> (slot, role), for the legend
    metrics = [("test_acc", "Target domain"),
               ("source_test_acc", "Source domain (forgetting)")]
    width = 0.8 / len(present)
    panel_w = max(0.75 + 0.36 * len(backbones) * len(present), 2.2)
    with _style():
        fig = _new_figure(panel_w * 2 + 0.3, PANEL_H * len(datasets) + 0.55)
        axes = fig.subplots(len(datasets), 2, squeeze=False, sharey=True)
        for r, dataset in enumerate(datasets):
            sub = sel[sel["dataset"] == dataset]
            frac = sub["label_fraction"].iloc[0]
            for c, (metric, title) in enumerate(metrics):
                ax = axes[r, c]
                ax.grid(axis="x", visible=False)
                for j, slot in enumerate(present):
                    for i, b in enumerate(backbones):
                        s = slot_strategy(slot, dataset, b, frac)
                        vals = sub[(sub["strategy"] == s) & (sub["backbone"] == b)][metric] \
                            .dropna() * 100
                        if vals.empty:
                            continue
                        mean, half, n = mean_ci(vals)
                        x = i + (j - (len(present) - 1) / 2) * width
                        color = strategy_color(s)
                        drawn.setdefault(s, (slot, roles.get(s)))
                        ax.bar(x, mean, width * 0.9, color=color, zorder=2,
                               hatch="////" if roles.get(s) == ORACLE else None,
                               edgecolor="white", lw=0.3)
                        top_y = mean
                        if not math.isnan(half):
                            ax.errorbar(x, mean, yerr=half, color="#222222", lw=0.8,
                                        capsize=1.8, zorder=4)
                            top_y = mean + half
                        jitter = np.linspace(-width * 0.2, width * 0.2, len(vals))
                        ax.scatter(x + jitter, vals, s=5, color="white", edgecolor="#222222",
                                   linewidth=0.45, zorder=5)
                        ax.annotate(f"{mean:.1f}", (x, max(top_y, vals.max())), xytext=(0, 1.5),
                                    textcoords="offset points", ha="center", va="bottom",
                                    fontsize=5.5, color="#222222", zorder=6)
                if sub[metric].isna().all():
                    ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center",
                            va="center", color="#888888")
                ax.set_xticks(range(len(backbones)), backbones)
                ax.set_xlim(-0.55, len(backbones) - 0.45)
                ax.set_ylim(0, 108)
                ax.set_yticks(range(0, 101, 20))
                ax.set_ylabel(f"{dataset}\nAccuracy (%)" if c == 0 else "")
                if r == 0:
                    ax.set_title(title)
                if len(backbones) > 2:
                    ax.tick_params(axis="x", rotation=20)
        fracs = sel.groupby("dataset")["label_fraction"].first()
        if fracs.nunique() == 1:
            fig.suptitle(f"Domain shift at {D.fraction_label(fracs.iloc[0])} of the labels",
                         fontsize=8.5)
        order = {sl: i for i, sl in enumerate(slots)}
        handles = [Patch(facecolor=strategy_color(s), hatch="////" if role == ORACLE else None,
                         edgecolor="white",
                         label=s if slot not in ("source-only", "oracle") else f"{s} ({slot})")
                   for s, (slot, role) in sorted(drawn.items(),
                                                 key=lambda kv: (order[kv[1][0]], kv[0]))]
        _legend_below(fig, handles, ncol_max=3)
        png = _save(fig, directory, "fig4_domain_shift")
    cap = ("Domain shift, per source→target pair (rows) at its largest label fraction. Left: "
           "accuracy on the target domain of the source-only baseline (a transfer strategy "
           "trained on source labels), of each adaptation strategy (source labels + unlabelled "
           "target) and of the oracle trained on target labels (hatched). "
           f"{D.SHIFT_RULE} Right: source-domain test accuracy of the same models: adaptation "
           "below source-only means adaptation cost source accuracy (forgetting). Bars and "
           "numbers: mean over seeds; whiskers: 95% CI; dots: seeds.")
    return FigureOut("fig4_domain_shift", "Domain shift", cap, png)
