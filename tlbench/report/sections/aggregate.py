"""The aggregate across tasks (dataset × backbone × label fraction): each strategy's interquartile
mean (IQM, rliable's aggregate) and mean of its tasks' test accuracies, the share of tasks on which
one strategy beats another, and performance profiles, all with intervals from draws of every
task's estimate (its seeds *and* its test examples; :mod:`tlbench.analysis.stats`). They cover these tasks,
not other datasets. A table, a table of shares and a figure."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tlbench.analysis import stats as S
from tlbench.report import data as D
from tlbench.report.figures import FigureOut, figure_style, new_figure, pct_axis, save_figure
from tlbench.report.sections import ReportInput, Section
from tlbench.report.style import strategy_color
from tlbench.report.tables import Table, TableCell, fmt_acc
from tlbench.analysis.selection import group_scores

BLOCK = ["dataset", "backbone", "label_fraction"]


@dataclass(frozen=True)
class TaskScores:
    """Per strategy its estimate on each of the same ``tasks`` (in order), per ordered pair the
    paired estimates of their difference; the strategies left out for lack of results in some
    task, and the oracles left out by role."""
    estimates: dict[str, list[S.Estimate]]
    differences: dict[tuple[str, str], list[S.Estimate]]
    tasks: list[tuple]
    dropped: list[str]
    oracles: list[str]


def task_scores(selected: pd.DataFrame, strategies: list[str], oracles: set[str],
                evidence=None, metric: str = "test_acc") -> TaskScores:
    """The strategies (oracles excepted) that have results in the most tasks, on the tasks where
    all of them have results: each task's estimate (seed term floored by the task's pooled one)
    and every pair's paired difference."""
    ok = selected[~selected["strategy"].isin(oracles)]
    tasks_of = {s: set(map(tuple, g[BLOCK].drop_duplicates().itertuples(index=False)))
                for s, g in ok.groupby("strategy")}
    most = max((len(t) for t in tasks_of.values()), default=0)
    kept = [s for s in strategies if len(tasks_of.get(s, ())) == most and most > 0]
    tasks = sorted(set.intersection(*(tasks_of[s] for s in kept))) if kept else []
    estimates = {s: [] for s in kept}
    differences = {(x, y): [] for x in kept for y in kept if x != y}
    for task in tasks:
        g = ok[(ok[BLOCK] == pd.Series(task, index=BLOCK)).all(axis=1)]
        scores = {s: group_scores(g[g["strategy"] == s], metric, evidence) for s in kept}
        floor = S.row_floor(scores.values())
        for s in kept:
            estimates[s].append(S.estimate(scores[s], floor))
        for x, y in differences:
            differences[(x, y)].append(S.paired_difference(scores[y], scores[x]).estimate)
    dropped = [s for s in strategies if s not in estimates and s not in oracles
               and s in set(ok["strategy"])]
    return TaskScores(estimates, differences, tasks, dropped,
                      sorted(oracles & set(selected["strategy"])))


def _inputs(inp: ReportInput) -> TaskScores:
    return inp.once("aggregate_scores", lambda: task_scores(
        inp.selected, inp.strategies, D.oracles(inp.frame), inp.evidence, inp.test_metric))


def _enough(ts: TaskScores) -> bool:
    return len(ts.tasks) >= 2 and len(ts.estimates) >= 2


def _note(ts: TaskScores, label: str) -> str:
    note = (f"Over {len(ts.tasks)} tasks (dataset × backbone × label fraction) where every "
            "strategy shown has results. The intervals draw every task's estimate from its t "
            f"distribution (its seeds' spread and its test set's noise, as the {label} table's "
            "intervals): they cover these tasks, not other datasets or backbones.")
    if ts.dropped:
        note += f" Left out for missing tasks: {', '.join(ts.dropped)}."
    if ts.oracles:
        note += f" Oracles (by role) are left out: {', '.join(ts.oracles)}."
    return note


def aggregate_table(inp: ReportInput) -> Table | None:
    ts = _inputs(inp)
    if not _enough(ts):
        return None
    aggs = inp.once("aggregate", lambda: S.aggregate(ts.estimates))
    rows = [[TableCell(a.strategy), TableCell(fmt_acc(a.iqm.estimate, a.iqm.low, a.iqm.high)),
             TableCell(fmt_acc(a.mean.estimate, a.mean.low, a.mean.high)), TableCell(str(a.seeds)),
             TableCell(str(a.tasks))] for a in aggs]
    best = max(a.iqm.estimate for a in aggs)
    for row, a in zip(rows, aggs):
        row[1].bold = a.iqm.estimate == best
    data = pd.DataFrame([{"strategy": a.strategy, "iqm": a.iqm.estimate, "iqm_low": a.iqm.low,
                          "iqm_high": a.iqm.high, "mean": a.mean.estimate,
                          "mean_low": a.mean.low, "mean_high": a.mean.high, "seeds": a.seeds,
                          "tasks": a.tasks} for a in aggs])
    cap = (f"Test {inp.score_label} (%) across tasks: the interquartile mean (IQM: the mean of the middle "
           f"50% of the tasks' mean {_plural(inp.score_label)}, robust to a few outlying tasks; rliable, Agarwal "
           "et al. 2021) and the mean, each [95% interval]. Seeds: the fewest any task had. "
           + _note(ts, inp.score_label))
    return Table("aggregate", "Aggregate across tasks (IQM)", cap,
                 ["Strategy", "IQM", "Mean", "Seeds", "Tasks"], rows, data, numeric_from=1)


def improvement_table(inp: ReportInput) -> Table | None:
    ts = _inputs(inp)
    if not _enough(ts):
        return None
    pairs = {(p.x, p.y): p.probability for p in S.improvement(ts.differences)}
    names = list(ts.estimates)
    rows = [[TableCell(x)] + [TableCell("–", muted=True) if x == y else
                         TableCell(f"{pairs[(x, y)].estimate:.2f} [{pairs[(x, y)].low:.2f}, "
                              f"{pairs[(x, y)].high:.2f}]", bold=pairs[(x, y)].low > 0.5)
                         for y in names] for x in names]
    data = pd.DataFrame([{"x": x, "y": y, "probability": iv.estimate, "low": iv.low,
                          "high": iv.high} for (x, y), iv in pairs.items()])
    cap = ("P(row > column): the share of these tasks on which the row's strategy has the higher "
           f"{inp.score_label} (an exact tie counts one half) [95% interval, from draws of each task's "
           "paired difference]. Bold: the whole interval above 0.5. " + _note(ts, inp.score_label))
    return Table("improvement", "Share of tasks won", cap, ["P(row > column)"] + names,
                 rows, data, numeric_from=1)


def aggregate_figure(inp: ReportInput) -> FigureOut | None:
    ts = _inputs(inp)
    if not _enough(ts):
        return None
    aggs = inp.once("aggregate", lambda: S.aggregate(ts.estimates))
    profs = S.profiles(ts.estimates, reps=1000)
    with figure_style():
        fig = new_figure(7.0, 0.35 * len(aggs) + 1.9)
        left, right = fig.subplots(1, 2, width_ratios=[1, 1.4])
        for i, a in enumerate(reversed(aggs)):
            color = strategy_color(a.strategy)
            left.plot([100 * a.iqm.low, 100 * a.iqm.high], [i, i], color=color, lw=6,
                      alpha=0.6, solid_capstyle="butt")
            left.plot([100 * a.iqm.estimate] * 2, [i - 0.3, i + 0.3], color="#222222", lw=1.2)
        left.set_yticks(range(len(aggs)), [a.strategy for a in reversed(aggs)])
        left.set_xlabel(f"IQM test {inp.score_label} (%)")
        pct_axis(left, "x")
        for p in profs:
            color = strategy_color(p.strategy)
            right.plot(100 * p.taus, p.fraction, color=color, label=p.strategy)
            right.fill_between(100 * p.taus, p.low, p.high, color=color, alpha=0.15, lw=0)
        right.set_xlabel(f"Test {inp.score_label} τ (%)")
        right.set_ylabel("Share of tasks > τ")
        right.set_xlim(0, 100)
        right.set_ylim(0, 1.02)
        right.legend(fontsize=6, frameon=False, loc="lower left")
        png = save_figure(fig, inp.fig_dir, "fig_aggregate")
    cap = (f"Left: interquartile mean of the tasks' test {_plural(inp.score_label)} with its 95% interval (bar; "
           f"tick: the IQM). Right: performance profiles, the share of tasks whose {inp.score_label} is "
           "above each τ, with 95% bands; a curve above another is better across the range "
           "(rliable, Agarwal et al. 2021). " + _note(ts, inp.score_label))
    return FigureOut("fig_aggregate", "Aggregate across tasks", cap, png)


def _plural(label: str) -> str:
    """``accuracies``, ``per-image APs``."""
    return label[:-1] + "ies" if label.endswith("y") else label + "s"


def _why(inp: ReportInput) -> str:
    ts = _inputs(inp)
    return (f"No aggregate across tasks: it needs two strategies with results in two tasks or "
            f"more (here {len(ts.estimates)} strategies on {len(ts.tasks)} "
            f"task{'s' if len(ts.tasks) != 1 else ''}).")


SECTIONS = [
    Section("aggregate", "table", aggregate_table, missing=_why, order=35),
    Section("improvement", "table", improvement_table, missing=None, place="details",
            order=35, label="Share of tasks won"),
    Section("aggregate_figure", "figure", aggregate_figure, missing=None, place="figures",
            order=45),
]
