"""Robustness under shift: in-distribution against out-of-distribution accuracy for every strategy,
the linear trend across the suite, and each strategy's effective robustness (Taori et al. 2020),
as a figure, a table and verdict sentences.

The pairs: a dataset's own test split against each out-of-distribution set it declares
(``[[dataset]] ood``: metric ``ood_acc:<set>``), and a shift pair's source test split against its
target test split. The trend is a least-squares line through every point of the pair (each
strategy × backbone × label fraction, oracles left out) on probit-scaled accuracies, as Taori et
al. fit it; a strategy's effective robustness is its OOD accuracy minus the trend's value at its
ID accuracy. Its interval comes from draws of the ID and the OOD estimate (each from its t
distribution over seeds and test examples; :func:`tlbench.analysis.stats.draws`) with the trend
held fixed; drawing them independently ignores their positive correlation, which widens the
interval (conservative).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from tlbench.analysis import stats as S
from tlbench.analysis.selection import group_scores
from tlbench.report import data as D
from tlbench.report.figures import (FigureOut, figure_style, interval_point, legend_below, panel_grid,
                                    save_figure, strategy_handles)
from tlbench.report.sections import CLASSIFICATION_ONLY, ReportInput, Section
from tlbench.report.style import ORACLE, order_strategies
from tlbench.report.tables import Table, TableCell, fmt_acc

BLOCK = ["dataset", "backbone", "label_fraction"]
#: probit of accuracies kept inside (0, 1)
EDGE = 1e-3


@dataclass(frozen=True)
class Point:
    """One strategy's ID and OOD accuracy in one row, with intervals, and its effective robustness."""

    dataset: str
    shifted: str
    backbone: str
    label_fraction: float
    strategy: str
    id: S.Interval
    ood: S.Interval
    effective: S.Interval


@dataclass(frozen=True)
class Trend:
    """probit(OOD) = intercept + slope · probit(ID), fitted over ``points`` points."""

    intercept: float
    slope: float
    points: int

    def __call__(self, accuracy):
        return norm.cdf(self.intercept + self.slope * norm.ppf(np.clip(accuracy, EDGE, 1 - EDGE)))


def effective_robustness(id_est: S.Estimate, ood_est: S.Estimate, trend: Trend) -> S.Interval:
    """OOD accuracy minus ``trend`` at the ID accuracy, with the 95% percentile interval over
    :func:`tlbench.analysis.stats.draws` of both estimates (the trend held fixed)."""
    draws = S.draws([id_est, ood_est])
    spread = draws[:, 1] - trend(draws[:, 0])
    lo, hi = np.quantile(spread, [(1 - S.CONFIDENCE) / 2, (1 + S.CONFIDENCE) / 2])
    return S.Interval(ood_est.mean - float(trend(id_est.mean)), float(lo), float(hi))


def pairs(frame: pd.DataFrame, shift: dict[str, bool]) -> list[tuple[str, str, str, str]]:
    """(dataset, shifted set's name, ID metric, OOD metric) of every pair with results."""
    out = []
    oods = [c for c in frame.columns if c.startswith("ood_acc:")]
    for dataset, g in frame.groupby("dataset", sort=True):
        if shift.get(dataset) and g["source_test_acc"].notna().any():
            out.append((dataset, "target domain", "source_test_acc", "test_acc"))
        own = "source_test_acc" if shift.get(dataset) else "test_acc"
        out += [(dataset, c.split(":", 1)[1], own, c) for c in oods if g[c].notna().any()]
    return out


def robustness(inp: ReportInput) -> tuple[list[Point], dict[tuple[str, str], Trend]]:
    """Every point of every pair and each pair's trend (pairs with fewer than 3 points: none)."""
    def compute():
        points, trends = [], {}
        transfer = inp.selected[inp.selected["role"] != ORACLE]
        for dataset, shifted, id_metric, ood_metric in pairs(transfer, inp.shift):
            rows = transfer[(transfer["dataset"] == dataset)].dropna(subset=[id_metric, ood_metric])
            estimates = {}
            for key, g in rows.groupby(BLOCK, sort=True):
                per = {m: {s: group_scores(gs, m, inp.evidence) for s, gs in g.groupby("strategy", sort=True)}
                       for m in (id_metric, ood_metric)}
                floors = {m: S.row_floor(per[m].values()) for m in per}
                for s in per[id_metric]:
                    estimates[(*key, s)] = tuple(S.estimate(per[m][s], floors[m]) for m in (id_metric, ood_metric))
            if len(estimates) < 3:
                continue
            x = norm.ppf(np.clip([e[0].mean for e in estimates.values()], EDGE, 1 - EDGE))
            y = norm.ppf(np.clip([e[1].mean for e in estimates.values()], EDGE, 1 - EDGE))
            slope, intercept = np.polyfit(x, y, 1)
            trend = trends[(dataset, shifted)] = Trend(float(intercept), float(slope), len(estimates))
            for (d, backbone, fraction, strategy), (id_est, ood_est) in sorted(estimates.items()):
                points.append(Point(d, shifted, backbone, fraction, strategy,
                                    id_est.interval(bounds=(0, 1)), ood_est.interval(bounds=(0, 1)),
                                    effective_robustness(id_est, ood_est, trend)))
        return points, trends
    return inp.once("robustness", compute)


def robustness_table(inp: ReportInput) -> Table | None:
    points, trends = robustness(inp)
    if not points:
        return None
    rows, records = [], []
    for p in points:
        er = p.effective
        apart = er.low > 0 or er.high < 0
        effective = f"{100 * er.estimate:+.1f} [{100 * er.low:+.1f}, {100 * er.high:+.1f}]".replace("-", "−")
        rows.append([TableCell(p.dataset), TableCell(p.shifted), TableCell(p.backbone),
                     TableCell(D.fraction_label(p.label_fraction)), TableCell(p.strategy),
                     TableCell(fmt_acc(p.id.estimate, p.id.low, p.id.high)),
                     TableCell(fmt_acc(p.ood.estimate, p.ood.low, p.ood.high)), TableCell(effective, bold=apart)])
        records.append({"dataset": p.dataset, "ood": p.shifted, "backbone": p.backbone,
                        "label_fraction": p.label_fraction, "strategy": p.strategy,
                        "id_acc": p.id.estimate, "id_ci_low": p.id.low, "id_ci_high": p.id.high,
                        "ood_acc": p.ood.estimate, "ood_ci_low": p.ood.low, "ood_ci_high": p.ood.high,
                        "effective_robustness": er.estimate, "er_ci_low": er.low, "er_ci_high": er.high,
                        "trend_intercept": trends[(p.dataset, p.shifted)].intercept,
                        "trend_slope": trends[(p.dataset, p.shifted)].slope})
    cap = ("In-distribution (the dataset's test split; a shift pair's source test split) and out-of-distribution "
           "test accuracy (each declared OOD set; a shift pair's target domain), mean over seeds [95% interval: "
           "seeds and test examples], and effective robustness (Taori et al. 2020): the OOD accuracy minus the "
           "suite's linear trend (least squares on probit-scaled accuracies through every strategy, backbone "
           "and label fraction of the pair, oracles left out) at the strategy's ID accuracy, in points [95% "
           "interval from draws of both estimates, the trend held fixed]. Bold: the interval excludes 0. With "
           "few points the trend itself is uncertain: read the figure.")
    return Table("robustness", "Robustness under shift: ID vs OOD accuracy and effective robustness", cap,
                 ["Dataset", "OOD set", "Backbone", "Labels", "Strategy", "ID accuracy", "OOD accuracy",
                  "Effective robustness (points)"], rows, pd.DataFrame(records), numeric_from=5, key_cols=4)


def robustness_sentences(inp: ReportInput) -> list[tuple[tuple, str]]:
    """((dataset, backbone, label fraction), sentence) per strategy whose effective robustness is
    told apart from 0."""
    out = []
    for p in robustness(inp)[0]:
        er = p.effective
        if er.low > 0 or er.high < 0:
            side = "above" if er.estimate > 0 else "below"
            out.append(((p.dataset, p.backbone, p.label_fraction), f"Robustness on {p.dataset} → {p.shifted} ({p.backbone} · "
                       f"{D.fraction_label(p.label_fraction)} of the labels): {p.strategy} is "
                       f"{100 * abs(er.estimate):.1f} points [{100 * abs(er.low if side == 'above' else er.high):.1f}, "
                       f"{100 * abs(er.high if side == 'above' else er.low):.1f}] {side} the suite's ID–OOD trend."))
    return out


def id_ood_figure(inp: ReportInput) -> FigureOut | None:
    points, trends = robustness(inp)
    if not points:
        return None
    panels = sorted(trends)
    strategies = order_strategies({p.strategy for p in points}, inp.roles)
    with figure_style():
        fig, axes = panel_grid(len(panels), 2.5, 2.3)
        for ax, (dataset, shifted) in zip(axes, panels):
            mine = [p for p in points if (p.dataset, p.shifted) == (dataset, shifted)]
            for p in mine:
                interval_point(ax, p.strategy, p.id, p.ood)
            lo = min(min(p.id.estimate for p in mine), min(p.ood.estimate for p in mine))
            grid = np.linspace(max(lo - 0.05, 0.0), 1.0, 100)
            ax.plot(100 * grid, 100 * trends[(dataset, shifted)](grid), color="#555555", lw=0.9, zorder=1,
                    label="trend")
            ax.plot([0, 100], [0, 100], color="#BBBBBB", lw=0.6, ls=":", zorder=0)
            ax.set_xlim(100 * grid[0], 100)
            ax.set_ylim(0, 100)
            ax.set_title(f"{dataset} → {shifted}", fontsize=7)
            ax.set_xlabel("In-distribution accuracy (%)")
            ax.set_ylabel("Out-of-distribution accuracy (%)")
        legend_below(fig, strategy_handles(strategies, inp.roles))
        png = save_figure(fig, inp.fig_dir, "fig_id_ood")
    cap = ("ID against OOD test accuracy, one point per strategy × backbone × label fraction (whiskers: 95% "
           "intervals over seeds and test examples). Solid: the suite's trend (least squares on probit-scaled "
           "accuracies, oracles left out); dotted: OOD = ID. A point above the trend is effectively robust "
           "(Taori et al. 2020); the table gives each distance with its interval.")
    return FigureOut("fig_id_ood", "Robustness: ID vs OOD accuracy", cap, png)


SECTIONS = [
    Section("robustness", "table", robustness_table, order=31, missing=lambda inp: None,
            tasks=CLASSIFICATION_ONLY),
    Section("robustness_figure", "figure", id_ood_figure, place="figures", order=51, missing=lambda inp: None,
            tasks=CLASSIFICATION_ONLY),
]
