"""What every figure of the report shares: its output record, style, layout, saving (PNG for
viewing, PDF and SVG for papers), log ticks, legends and label placement. The figures themselves
are drawn by the report's sections (:mod:`tlbench.report.sections`).

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
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from tlbench.report.style import RC, strategy_color, strategy_linestyle, strategy_marker

FORMATS = ("png", "pdf", "svg")


@dataclass
class FigureOut:
    name: str
    title: str
    caption: str
    png: Path


def figure_style():
    return mpl.rc_context({**sns.axes_style("ticks"), **RC})


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # a canvas of its own: no pyplot, no display
    return fig


def freeze_layout(fig: Figure) -> None:
    """Solve the constrained layout once and keep it (texts added later do not move axes)."""
    fig.canvas.draw()
    fig.set_layout_engine("none")


def save_figure(fig: Figure, directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"png": {"Software": None}, "pdf": {"CreationDate": None, "ModDate": None},
            "svg": {"Date": None}}
    for i, ext in enumerate(FORMATS):
        fig.savefig(directory / f"{name}.{ext}", format=ext, metadata=meta[ext])
        if i == 0:  # the layout is solved on the first save; freeze it for the others
            fig.set_layout_engine("none")
    return directory / f"{name}.png"


def pct_axis(ax, axis: str = "y") -> None:
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def human(v: float, _pos=None) -> str:
    """Tick label for a count or a duration: 0.5, 20, 300, 20k, 1.5M, 2G."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


def log_ticks(ax, lo: float, hi: float) -> None:
    """Readable ticks on a log x axis whatever its span: 1-2-5 steps on a short one."""
    span = math.log10(hi / lo) if lo > 0 and hi > 0 else 3
    subs = (1.0,) if span >= 2.5 else (1.0, 3.0) if span >= 1.2 else (1.0, 2.0, 5.0)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(human))
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10), numticks=12))
    ax.xaxis.set_minor_formatter(NullFormatter())


def strategy_handles(strategies, roles=None) -> list[Line2D]:
    roles = roles or {}
    return [Line2D([], [], color=strategy_color(s), marker=strategy_marker(s),
                   linestyle=strategy_linestyle(s, roles.get(s)), label=s) for s in strategies]


def interval_point(ax, strategy: str, x, y, show_x: bool = True) -> tuple[float, float]:
    """One strategy's point at two intervals (``x``, ``y``: :class:`tlbench.analysis.stats.Interval`
    of fractions, drawn in points) with both whiskers (none where an interval is missing, or on x
    with ``show_x`` False); returns the point in points."""
    px, py = 100 * x.estimate, 100 * y.estimate

    def whisker(iv, at):
        return None if math.isnan(iv.low) else [[max(at - 100 * iv.low, 0)], [max(100 * iv.high - at, 0)]]
    ax.errorbar(px, py, xerr=whisker(x, px) if show_x else None, yerr=whisker(y, py), fmt=strategy_marker(strategy),
                ms=4.5, color=strategy_color(strategy), elinewidth=0.7, capsize=1.5, zorder=3)
    return px, py


def panel_grid(n: int, width: float, height: float, max_cols: int = 3) -> tuple[Figure, list]:
    """A figure of ``n`` panels of ``width`` × ``height`` inches, at most ``max_cols`` a row, with
    room for a legend below; the axes in reading order, those past ``n`` hidden."""
    nrows, ncols = grid_shape(n, max_cols)
    fig = new_figure(width * ncols + 0.2, height * nrows + 0.6)
    axes = list(np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def grid_shape(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def panel_title(dataset: str, backbone: str | None, shift: bool) -> str:
    name = f"{dataset} (target)" if shift else dataset
    return name if backbone is None else f"{name} · {backbone}"


def legend_below(fig: Figure, handles, ncol_max: int = 4, **kw) -> None:
    fig.legend(handles=handles, loc="outside lower center", frameon=False,
               ncol=min(len(handles), ncol_max), handlelength=2.2, columnspacing=1.2, **kw)


# ---------------------------------------------------------------------------- Pareto labels


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


def place_labels(fig: Figure, ax, items, obstacles_xy, line_xy=None) -> None:
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
