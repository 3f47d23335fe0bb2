"""Forgetting: what each strategy's adaptation cost the backbone's representation, measured on the
suite's held-out reference tasks (``[forgetting]``, :mod:`tlbench.train.retention`), as a table,
the learning–forgetting frontier (target accuracy against forgetting) and verdict sentences.

Forgetting of a cell is the pretrained backbone's probe accuracy on a reference task minus the
adapted backbone's, paired per reference example; its interval counts seeds and reference
examples as the accuracy intervals do (:func:`tlbench.analysis.selection.summarize_seeds`). Whether a
strategy forgets at all is a t test of "forgetting is 0" per strategy, Holm-corrected across the
row's strategies; which forgets less, the row's paired tests (:func:`tlbench.analysis.stats.compare_row`)
on the per-example retention.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tlbench.analysis import stats as S
from tlbench.analysis.selection import group_scores
from tlbench.report import data as D
from tlbench.report.figures import (FigureOut, figure_style, interval_point, legend_below, panel_grid,
                                    pareto_front, save_figure, strategy_handles)
from tlbench.report.sections import CLASSIFICATION_ONLY, ReportInput, Section
from tlbench.report.style import order_strategies
from tlbench.report.tables import Table, TableCell, fmt_acc

BLOCK = ["dataset", "backbone", "label_fraction"]
PREFIX = "forgetting:"


def references(frame: pd.DataFrame) -> list[str]:
    """The reference tasks some record measured forgetting on."""
    return sorted(c[len(PREFIX):] for c in frame.columns if c.startswith(PREFIX) and frame[c].notna().any())


@dataclass(frozen=True)
class Forgets:
    """One strategy's forgetting in one row on one reference task: the estimate with its interval
    (a fraction; positive: the adapted backbone's probe is worse), the Holm-adjusted p of "no
    forgetting" across the row's strategies, and ``unchanged``: every cell left the backbone as
    it was (exactly zero on every example, e.g. the linear probe)."""

    strategy: str
    interval: S.Interval
    p_holm: float
    unchanged: bool

    @property
    def forgets(self) -> bool:
        return not self.unchanged and self.p_holm < S.ALPHA and self.interval.estimate > 0


def row_forgetting(inp: ReportInput) -> dict[tuple, dict[str, list[Forgets]]]:
    """(dataset, backbone, label fraction) -> reference -> each strategy's :class:`Forgets`."""
    def compute():
        out: dict[tuple, dict[str, list[Forgets]]] = {}
        for reference in references(inp.selected):
            metric = PREFIX + reference
            rows = inp.selected.dropna(subset=[metric])
            for key, g in rows.groupby(BLOCK, sort=True):
                per_strategy = {s: group_scores(gs, metric, inp.evidence) for s, gs in g.groupby("strategy", sort=True)}
                floor = S.row_floor(per_strategy.values())
                estimates = {s: S.estimate(scores, floor) for s, scores in per_strategy.items()}
                unchanged = {s: bool(np.all(scores.values == 0)) for s, scores in per_strategy.items()}
                adjusted = S.holm([1.0 if unchanged[s] else e.p_value() for s, e in estimates.items()])
                out.setdefault(key, {})[reference] = [
                    Forgets(s, e.interval(bounds=(-1.0, 1.0)), float(q), unchanged[s])
                    for (s, e), q in zip(estimates.items(), adjusted)]
        return out
    return inp.once("row_forgetting", compute)


def _points(f: Forgets) -> str:
    if f.unchanged:
        return "0 (unchanged)"
    iv = f.interval
    return f"{100 * iv.estimate:+.1f} [{100 * iv.low:+.1f}, {100 * iv.high:+.1f}]".replace("-", "−")


def forgetting_table(inp: ReportInput) -> Table | None:
    found = row_forgetting(inp)
    if not found:
        return None
    refs = references(inp.selected)
    accuracy = {(r.dataset, r.backbone, r.label_fraction, r.strategy): r for r in inp.summary.itertuples(index=False)}
    drift = inp.selected.groupby(BLOCK + ["strategy"]).mean(numeric_only=True)
    rows, records = [], []
    for key in sorted(found):
        strategies = order_strategies({f.strategy for per in found[key].values() for f in per}, inp.roles)
        for strategy in strategies:
            acc = accuracy.get((*key, strategy))
            line = [TableCell(key[0]), TableCell(key[1]), TableCell(D.fraction_label(key[2])), TableCell(strategy),
                    TableCell(fmt_acc(acc.mean, acc.ci_low, acc.ci_high) if acc is not None else "–")]
            record = {"dataset": key[0], "backbone": key[1], "label_fraction": key[2], "strategy": strategy,
                      "test_acc": acc.mean if acc is not None else math.nan}
            for ref in refs:
                f = next((f for f in found[key].get(ref, []) if f.strategy == strategy), None)
                line.append(TableCell(_points(f) if f is not None else "–", bold=bool(f and f.forgets),
                                 muted=f is None))
                agreement = drift.get(f"source_agreement:{ref}")
                value = agreement.get((*key, strategy), math.nan) if agreement is not None else math.nan
                line.append(TableCell("–" if math.isnan(value) else f"{100 * value:.1f}", muted=math.isnan(value)))
                record.update({f"forgetting_{ref}": f.interval.estimate if f else math.nan,
                               f"forgetting_{ref}_ci_low": f.interval.low if f else math.nan,
                               f"forgetting_{ref}_ci_high": f.interval.high if f else math.nan,
                               f"forgetting_{ref}_p_holm": f.p_holm if f else math.nan,
                               f"source_agreement_{ref}": value})
            rows.append(line)
            records.append(record)
    header = ["Dataset", "Backbone", "Labels", "Strategy", "Target accuracy"]
    for ref in refs:
        header += [f"Forgetting on {ref} (points)", f"Source agreement on {ref} (%)"]
    cap = ("Forgetting: a linear probe (logistic regression, C = 1, on standardised features) fitted on "
           "a held-out reference task's training examples, scored on its test examples, with the pretrained "
           "backbone minus with the adapted one, in points (positive: the adaptation lost general "
           "usefulness); mean over seeds [95% interval counting the seeds' spread and the reference "
           "examples']. Bold: told apart from no forgetting (t test, Holm across the row's strategies, "
           f"α = {S.ALPHA:g}). “0 (unchanged)”: the strategy predicted from the frozen pretrained "
           "backbone, so its forgetting is zero by construction. Source agreement: the share of reference "
           "test examples on which the adapted backbone, through its pretrained source head (ImageNet "
           "classes), predicts the class the pretrained network predicts (backbones with a source head "
           "only). Strategies without a pretrained backbone (role baseline) are not measured.")
    return Table("forgetting", "Forgetting on held-out reference tasks", cap, header, rows,
                 pd.DataFrame(records), numeric_from=4, key_cols=3)


def forgetting_sentences(inp: ReportInput) -> list[tuple[tuple, str]]:
    """((dataset, backbone, label fraction), sentence) per row and reference task: which strategies
    forget (told apart from none) and which cannot be told apart from none."""
    out = []
    for key, per_ref in sorted(row_forgetting(inp).items()):
        where = f"{key[0]} · {key[1]} · {D.fraction_label(key[2])} of the labels"
        for ref, found in per_ref.items():
            forgets = [f for f in found if f.forgets]
            rest = [f.strategy for f in found if not f.forgets and not f.unchanged]
            if forgets:
                listed = ", ".join(f"{f.strategy} {100 * f.interval.estimate:.1f} points "
                                   f"[{100 * f.interval.low:.1f}, {100 * f.interval.high:.1f}]" for f in forgets)
                text = f"Forgetting on {ref} ({where}): {listed} of the pretrained probe's accuracy"
            else:
                text = f"Forgetting on {ref} ({where}): no strategy is told apart from no forgetting"
            if rest and forgets:
                text += f"; {', '.join(rest)} cannot be told apart from none"
            out.append((key, text + "."))
    return out


def frontier(inp: ReportInput) -> FigureOut | None:
    """Target accuracy against forgetting on the first reference task, one panel per dataset ×
    backbone × label fraction, the Pareto front (less forgetting, more accuracy) joined."""
    found = row_forgetting(inp)
    refs = references(inp.selected)
    if not found:
        return None
    ref = refs[0]
    accuracy = {(r.dataset, r.backbone, r.label_fraction, r.strategy): r for r in inp.summary.itertuples(index=False)}
    keys = sorted(k for k in found if ref in found[k])
    strategies = order_strategies({f.strategy for k in keys for f in found[k][ref]}, inp.roles)
    with figure_style():
        fig, axes = panel_grid(len(keys), 2.4, 2.1)
        for ax, key in zip(axes, keys):
            points = []
            for f in found[key][ref]:
                acc = accuracy.get((*key, f.strategy))
                if acc is not None:
                    x, y = interval_point(ax, f.strategy, f.interval, S.Interval(acc.mean, acc.ci_low, acc.ci_high),
                                          show_x=not f.unchanged)
                    points.append({"x": x, "y": y})
            front = pareto_front(pd.DataFrame(points), "x", "y") if points else pd.DataFrame()
            if len(front) > 1:
                ax.plot(front["x"], front["y"], color="#888888", lw=0.8, ls="--", zorder=1)
            ax.axvline(0, color="#BBBBBB", lw=0.6, zorder=0)
            ax.set_title(f"{key[0]} · {key[1]} · {D.fraction_label(key[2])}", fontsize=7)
            ax.set_xlabel(f"Forgetting on {ref} (points)")
            ax.set_ylabel("Target accuracy (%)")
        legend_below(fig, strategy_handles(strategies, inp.roles))
        png = save_figure(fig, inp.fig_dir, "fig_forgetting_frontier")
    cap = ("The learning–forgetting frontier: each strategy's target test accuracy against its forgetting "
           f"on the held-out reference task {ref} (the pretrained backbone's probe accuracy minus the adapted "
           "one's, in points; left of 0: the adaptation made the probe better). Whiskers: the tables' 95% "
           "intervals (seeds and examples). Dashed: the Pareto front (no other strategy forgets less and "
           "is more accurate).")
    return FigureOut("fig_forgetting_frontier", "Learning–forgetting frontier", cap, png)


SECTIONS = [
    Section("forgetting", "table", forgetting_table, order=30,
            missing=lambda inp: None, tasks=CLASSIFICATION_ONLY),
    Section("forgetting_frontier", "figure", frontier, place="figures", order=50,
            missing=lambda inp: None, tasks=CLASSIFICATION_ONLY),
]
