"""Calibration: per row (dataset × backbone × label fraction) each strategy's top-label ECE and
NLL on the test split (the target's for a shift pair) with their 95% intervals, the verdict
sentences of the row's paired tests, and a reliability diagram per dataset × backbone.

ECE and NLL are per-example scores (:mod:`tlbench.analysis.calibration`: 15 equal-width bins, each
bin's sign borrowed from the other half of the test set), so their intervals, paired differences
and Holm-adjusted tests are accuracy's own (:func:`tlbench.analysis.stats.compare_row`, oracles
never the best). A row's best is bold only where it is told apart from every other strategy.
NLL needs the probability of the true class, which evidence stored before tlbench 0.4 lacks: such
strategies get no NLL (said in the cell, the sentence and the caption), never a guess."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tlbench.analysis import calibration as C
from tlbench.analysis import stats as S
from tlbench.analysis.selection import accuracy_evidence
from tlbench.report import data as D
from tlbench.report.figures import (FigureOut, figure_style, grid_shape, legend_below,
                                    new_figure, panel_title, pct_axis, save_figure,
                                    strategy_handles)
from tlbench.report.sections import CLASSIFICATION_ONLY, ReportInput, Section
from tlbench.report.sections.comparison import BLOCK, join_names, p_text, place
from tlbench.report.sections.verdicts import sentences_table
from tlbench.report.style import (PANEL_H, PANEL_W, strategy_color, strategy_linestyle,
                                  strategy_marker)
from tlbench.report.tables import MARK, Table, TableCell, dataset_label

#: a reliability diagram draws the bins with at least this many predictions (seeds pooled)
MIN_BIN = 5
NO_NLL = ("evidence stored without the probability of the true class (before tlbench 0.4): "
          "no NLL")


@dataclass(frozen=True)
class Metric:
    """One calibration metric in one row: its name, how a value is written, each strategy's
    interval (of the metric itself: lower is better) and the row's paired comparison of the
    negated scores (None under two strategies)."""

    name: str
    fmt: Callable[[float, bool], str]
    intervals: dict[str, S.Interval]
    result: S.RowComparison | None

    def told_apart(self, strategy: str, oracles: frozenset[str]) -> bool:
        """Whether ``strategy`` is the row's best told apart from every other non-oracle."""
        r = self.result
        return (r is not None and strategy == r.best and len(r.tied) == 1
                and all(c.told_apart for c in r.comparisons if c.strategy not in oracles))

    def text(self, iv: S.Interval, signed: bool = False) -> str:
        low, high = self.fmt(iv.low, signed), self.fmt(iv.high, signed)
        return f"{self.fmt(iv.estimate, signed)} [{low}, {high}]"


def _points(x: float, signed: bool) -> str:
    return (f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}").replace("-", "−")


def _nats(x: float, signed: bool) -> str:
    return (f"{x:+.2f}" if signed else f"{x:.2f}").replace("-", "−")


@dataclass(frozen=True)
class CalibrationRow:
    """One row's ECE and NLL, the strategies without NLL, each strategy's plug-in ECE (mean
    over seeds, for comparison with published numbers) and its reliability points (seeds
    pooled)."""

    dataset: str
    backbone: str
    label_fraction: float
    shift: bool
    oracles: frozenset[str]
    ece: Metric
    nll: Metric
    no_nll: tuple[str, ...]
    plugin: dict[str, float]
    reliability: dict[str, C.Reliability]


def _metric(name: str, fmt: Callable[[float, bool], str], scores: dict[str, S.Scores],
            oracles: frozenset[str], bounds: tuple[float, float] | None) -> Metric:
    floor = S.row_floor(scores.values())
    intervals = {s: C.negated(S.estimate(sc, floor).interval(bounds=bounds))
                 for s, sc in scores.items()}
    result = (S.compare_row(scores, [s for s in scores if s not in oracles], bounds=None)
              if len(scores) > 1 else None)
    return Metric(name, fmt, intervals, result)


def calibration_rows(inp: ReportInput) -> list[CalibrationRow]:
    """Every row with test evidence for at least one strategy (computed once per report)."""
    def compute():
        oracles = D.oracles(inp.frame)
        rows = []
        for (dataset, backbone, frac), g in inp.selected.groupby(BLOCK, sort=True):
            groups = dict(list(g.groupby("strategy", sort=False)))
            found = {s: e for s in inp.strategies if s in groups
                     and (e := accuracy_evidence(groups[s], inp.evidence))}
            if not found:
                continue
            here = frozenset(oracles & set(found))
            nll = {s: sc for s, e in found.items() if (sc := C.nll_scores(e)) is not None}
            rows.append(CalibrationRow(
                dataset, backbone, float(frac), bool(inp.shift.get(dataset, False)), here,
                _metric("ECE", _points, {s: C.ece_scores(e) for s, e in found.items()}, here,
                        None),
                _metric("NLL", _nats, nll, here, (-math.inf, 0.0)),
                tuple(s for s in found if s not in nll),
                {s: float(np.mean([C.plugin_ece(v.prob, v.correct) for v in e.values()]))
                 for s, e in found.items()},
                {s: C.reliability(np.concatenate([v.prob for v in e.values()]),
                                  np.concatenate([v.correct for v in e.values()]))
                 for s, e in found.items()}))
        return rows
    return inp.once("calibration_rows", compute)


# ---------------------------------------------------------------------------- table

def _cell(metric: Metric, strategy: str, oracles: frozenset[str], missing: str) -> TableCell:
    if strategy not in metric.intervals:
        return TableCell("–", muted=True, title=missing)
    r = metric.result
    c = r.of(strategy) if r is not None and strategy != r.best else None
    close = c is not None and r.no_verdict is None and not c.told_apart
    return TableCell(metric.text(metric.intervals[strategy]), bold=metric.told_apart(strategy, oracles),
                mark=MARK if close else "",
                title=f"the row's best ({r.best}) minus this: {metric.text(c.difference, True)}, "
                      f"{p_text(c.p_holm)} after Holm" if c is not None else "")


def calibration_table(inp: ReportInput) -> Table | None:
    rows = calibration_rows(inp)
    if not rows:
        return None
    cells, records, breaks, prev = [], [], [], None
    for row in rows:
        if prev is not None and prev != (row.dataset, row.backbone):
            breaks.append(len(cells))
        prev = (row.dataset, row.backbone)
        for s in row.ece.intervals:
            line = [TableCell(dataset_label(row.dataset, row.shift)), TableCell(row.backbone),
                    TableCell(D.fraction_label(row.label_fraction)),
                    TableCell(f"{s} (oracle)" if s in row.oracles else s)]
            line += [_cell(row.ece, s, row.oracles, ""), _cell(row.nll, s, row.oracles, NO_NLL)]
            cells.append(line)
            records.append(_record(row, s))
    cap = (f"Top-label calibration on the test split (for a shift pair, the target's), of the "
           "variant each seed selected on validation: expected calibration error in points "
           f"({C.BINS} equal-width confidence bins, |accuracy − confidence| weighted by the bin's "
           "share of the examples, each bin's sign taken from the other half of the test set so "
           "that a calibrated model scores 0 on average: it can come out slightly below 0; the "
           "plug-in ECE of Guo et al., biased upwards, is the CSV's ece_plugin) and negative "
           "log-likelihood of the true class in nats, each with its 95% interval over the seeds "
           "and the test examples, docs: Statistics). Lower is better; NLL rewards accuracy as "
           "well as calibration. Bold: the row's best, "
           "only where the paired tests tell it apart from every other strategy (Holm–Bonferroni "
           f"across every pair of the row, α = {S.ALPHA:g}, {S.MIN_SEEDS} shared seeds); "
           f"{MARK}: cannot be told apart from the row's best.")
    if any(r.no_nll for r in rows):
        cap += f" “–” under NLL: {NO_NLL}."
    if any(r.oracles for r in rows):
        cap += " Oracles (role oracle) are compared but never the best."
    header = ["Dataset", "Backbone", "Labels", "Strategy", "ECE (points)", "NLL (nats)"]
    return Table("calibration", "Calibration: ECE and NLL, mean [95% interval]", cap, header,
                 cells, pd.DataFrame(records), numeric_from=4, key_cols=3, breaks=breaks)


def _record(row: CalibrationRow, strategy: str) -> dict:
    out = {"dataset": row.dataset, "backbone": row.backbone,
           "label_fraction": row.label_fraction, "strategy": strategy,
           "ece_plugin": row.plugin[strategy]}
    for key, metric in (("ece", row.ece), ("nll", row.nll)):
        iv = metric.intervals.get(strategy, S.Interval(math.nan, math.nan, math.nan))
        r = metric.result
        c = r.of(strategy) if r is not None else None
        out |= {key: iv.estimate, f"{key}_low": iv.low, f"{key}_high": iv.high,
                f"{key}_best": metric.told_apart(strategy, row.oracles),
                f"{key}_p_holm_vs_best": c.p_holm if c is not None else math.nan}
    return out


# ---------------------------------------------------------------------------- sentences

def _metric_sentence(metric: Metric, oracles: frozenset[str]) -> str:
    """What the paired tests of one metric say about the row: the lowest, whom it is told apart
    from (better calibrated), whom not (not significant)."""
    r = metric.result
    name = (lambda s: f"{s} (oracle)" if s in oracles else s)
    low = (f"{join_names([name(s) for s in r.tied])} tie for the lowest {metric.name}"
           if len(r.tied) > 1 else f"{name(r.best)} has the lowest {metric.name}")
    parts = [f"{low}, {metric.text(metric.intervals[r.best])}"]
    if r.no_verdict:
        return f"{parts[0]}; no verdict ({r.no_verdict})"
    for c in sorted(r.comparisons, key=lambda c: c.difference.estimate):
        if c.strategy in r.tied:
            continue
        diff = f"{metric.name} {metric.text(c.difference, True)}, {p_text(c.p_holm)} after Holm"
        if c.told_apart:
            parts.append(f"{name(r.best)} is better calibrated than {name(c.strategy)} ({diff})")
        elif c.seeds < S.MIN_SEEDS:
            parts.append(f"{name(c.strategy)}: too few shared seeds for a verdict ({diff})")
        else:
            parts.append(f"{name(r.best)} and {name(c.strategy)} cannot be told apart ({diff}: "
                         "not significant)")
    return "; ".join(parts)


def sentences(inp: ReportInput) -> list[tuple[tuple, str]]:
    """((dataset, backbone, label fraction), sentence) for every row with two strategies."""
    out = []
    for row in calibration_rows(inp):
        parts = [_metric_sentence(m, row.oracles) for m in (row.nll, row.ece)
                 if m.result is not None]
        if not parts:
            continue
        if row.no_nll:
            parts.append(f"{join_names(list(row.no_nll))}: {NO_NLL}")
        where = place(row.dataset, row.backbone, row.label_fraction, row.shift)
        out.append(((row.dataset, row.backbone, row.label_fraction),
                    f"{where}: " + ". ".join(parts) + "."))
    return out


def verdicts_table(inp: ReportInput) -> Table | None:
    cap = ("One sentence per row of the calibration table, from its paired tests alone: NLL, "
           "then ECE (differences: the lowest minus the other, nats and points; lower is better "
           f"calibrated), α = {S.ALPHA:g} after Holm–Bonferroni across every pair of the row, "
           f"{S.MIN_SEEDS} shared seeds for a verdict. “Cannot be told apart” means the test "
           "found no difference, not that there is none.")
    return sentences_table("calibration_verdicts", "Calibration verdicts", cap, sentences(inp))


# ---------------------------------------------------------------------------- figure

def reliability_figure(inp: ReportInput) -> FigureOut | None:
    """One panel per dataset × backbone, at its largest label fraction, strategies overlaid."""
    last = {}
    for row in calibration_rows(inp):       # sorted by fraction within a dataset × backbone
        last[(row.dataset, row.backbone)] = row
    if not last:
        return None
    present = [s for s in inp.strategies if any(s in r.reliability for r in last.values())]
    nrows, ncols = grid_shape(len(last))
    with figure_style():
        fig = new_figure(PANEL_W * ncols, PANEL_H * nrows + 0.5)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for i, (ax, row) in enumerate(zip(axes.flat, last.values())):
            ax.plot([0, 100], [0, 100], color="#888888", lw=0.8, ls=":", zorder=1)
            for s, rel in row.reliability.items():
                keep = rel.count >= MIN_BIN
                ax.plot(100 * rel.confidence[keep], 100 * rel.accuracy[keep],
                        color=strategy_color(s), marker=strategy_marker(s),
                        linestyle=strategy_linestyle(s, inp.roles.get(s)), zorder=3)
            ax.set(xlim=(0, 100), ylim=(0, 100), xlabel="Confidence (%)",
                   ylabel="Accuracy (%)" if i % ncols == 0 else "",
                   title=f"{panel_title(row.dataset, None, row.shift)}\n"
                         f"{row.backbone} · {D.fraction_label(row.label_fraction)} of the labels")
            ax.title.set_fontsize(7)
            pct_axis(ax)
            pct_axis(ax, "x")
        for ax in axes.flat[len(last):]:
            ax.set_visible(False)
        legend_below(fig, strategy_handles(present, inp.roles), ncol_max=max(2, 2 * ncols))
        png = save_figure(fig, inp.fig_dir, "fig_reliability")
    cap = (f"Reliability diagram at the largest label fraction of each dataset × backbone: the "
           f"test predictions of every seed pooled into {C.BINS} equal-width bins of top-label "
           "confidence, each bin drawn at its mean confidence and its accuracy (bins with at "
           f"least {MIN_BIN} predictions). On the dotted diagonal a model is calibrated; below "
           "it, over-confident. Dashed lines: oracles. Intervals and tests: the calibration "
           "table.")
    return FigureOut("fig_reliability", "Reliability diagram", cap, png)


SECTIONS = [
    Section("calibration", "table", calibration_table, order=25,
            missing="No calibration table or reliability diagram: no cell has per-example "
                    "evidence on its test split (records stored without it carry no confidences).",
            tasks=CLASSIFICATION_ONLY),
    Section("calibration_verdicts", "table", verdicts_table, order=26, tasks=CLASSIFICATION_ONLY),
    Section("reliability", "figure", reliability_figure, missing=None, place="figures",
            order=30, tasks=CLASSIFICATION_ONLY),
]
