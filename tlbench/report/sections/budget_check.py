"""The budget check: the rows a suite's ``[budget_check]`` re-ran with more compute, the verdict
at each budget, and what the extra compute bought each strategy (paired on the same seeds, label
subsets and test examples).

A row is **flagged** (marked in the accuracy table and its verdict sentence: its numbers describe
the budget, not the strategies) when the extra compute changes it: a strategy's accuracy is told
apart from its own at the suite's budget (Holm across the row's strategies), or a pair told apart
at one budget is told apart the other way round at the other. A pair told apart at one budget and
merely not at the other, with no strategy's accuracy changed, is a p-value on either side of α for
nearly the same numbers: listed, not flagged."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tlbench.analysis import stats as S
from tlbench.report import data as D
from tlbench.report.sections import ReportInput, Section
from tlbench.report.sections.comparison import Row, row_comparisons, rows_of
from tlbench.report.tables import Table, TableCell, dataset_label, fmt_diff
from tlbench.analysis.selection import group_scores

BLOCK = ("dataset", "backbone", "label_fraction")


@dataclass(frozen=True)
class Check:
    """One re-run row: its comparison at the suite's budget and at ``budget`` times it, the
    paired gain of each strategy with its Holm-adjusted p over the row, what changed (None:
    nothing the flag rule counts) and the pairs told apart at one budget only."""
    base: Row
    rerun: Row
    budget: float
    gains: dict[str, S.Difference]
    gains_holm: dict[str, float]
    change: str | None
    one_budget_only: str


def claims(row: Row) -> set[tuple[str, str]]:
    """The row's verdict as statements: every pair told apart, as (winner, loser)."""
    out = set()
    for x, y, c in row.result.pairs:
        if c.told_apart:
            out.add((y, x) if c.difference.estimate > 0 else (x, y))
    return out


def _text(pairs) -> str:
    return ", ".join(f"{w} > {l}" for w, l in sorted(pairs))


def what_changed(base: Row, rerun: Row, budget: float, gains: dict[str, S.Difference],
                 gains_holm: dict[str, float]) -> tuple[str | None, str]:
    """(the change that flags the row, in words, or None; the pairs told apart at one budget
    only, in words, or "")."""
    if base.result.no_verdict or rerun.result.no_verdict:
        return None, ""
    parts = []
    moved = [s for s, q in gains_holm.items()
             if q < S.ALPHA and gains[s].estimate.seeds >= S.MIN_SEEDS]
    for s in moved:
        d = gains[s].difference
        parts.append(f"{s} {'gains' if d.estimate > 0 else 'loses'} {100 * abs(d.estimate):.1f} "
                     f"points [{100 * d.low:+.1f}, {100 * d.high:+.1f}]")
    before, after = claims(base), claims(rerun)
    parts += sorted(f"{w} > {l} at 1×, {l} > {w} at {budget:g}×" for w, l in before
                    if (l, w) in after)
    only = []
    if before - after:
        only.append(f"at 1× only: {_text(before - after)}")
    if after - before:
        only.append(f"at {budget:g}× only: {_text(after - before)}")
    return ("; ".join(parts) or None), "; ".join(only)


def checks(inp: ReportInput) -> list[Check]:
    def compute():
        if inp.check.empty:
            return []
        base = {(r.dataset, r.backbone, r.label_fraction): r for r in rows_of(inp)}
        before = dict(list(inp.selected.groupby(list(BLOCK))))
        out = []
        for budget in D.check_budgets(inp.check):
            selected = D.select(D.at_budget(inp.check, budget))
            after = dict(list(selected.groupby(list(BLOCK))))
            for rerun in row_comparisons(selected, inp.evidence, D.oracles(inp.frame), inp.shift):
                key = (rerun.dataset, rerun.backbone, rerun.label_fraction)
                if key not in base:
                    continue
                was = dict(list(before[key].groupby("strategy")))
                gains = {s: S.paired_difference(group_scores(was[s], inp.test_metric, inp.evidence),
                                                group_scores(g, inp.test_metric, inp.evidence),
                                                same_runs=True)
                         for s, g in after[key].groupby("strategy") if s in was}
                holm = dict(zip(gains, S.holm([g.p for g in gains.values()])))
                change, only = what_changed(base[key], rerun, budget, gains, holm)
                out.append(Check(base[key], rerun, budget, gains, holm, change, only))
        return out
    return inp.once("budget_checks", compute)


def changed_rows(inp: ReportInput) -> dict[tuple, str]:
    """(dataset, backbone, label fraction) -> what changed, for the rows whose verdict the
    budget check changes."""
    return {(c.base.dataset, c.base.backbone, c.base.label_fraction):
            f"at {c.budget:g}× the budget: {c.change}" for c in checks(inp) if c.change}


def budget_table(inp: ReportInput) -> Table | None:
    found = checks(inp)
    if not found:
        return None
    strategies = [s for s in inp.strategies if any(s in c.gains for c in found)]
    rows, records = [], []
    for c in found:
        r0, r1 = c.base.result, c.rerun.result
        line = [TableCell(dataset_label(c.base.dataset, c.base.shift)), TableCell(c.base.backbone),
                TableCell(D.fraction_label(c.base.label_fraction)), TableCell(f"{c.budget:g}×"),
                TableCell(f"{', '.join(r0.tied)} → {', '.join(r1.tied)}"),
                TableCell("no verdict" if r0.no_verdict else "changes" if c.change else "same",
                     bold=bool(c.change), title=c.change or (r0.no_verdict or "")),
                TableCell(c.one_budget_only or "–", muted=not c.one_budget_only)]
        for s in strategies:
            g = c.gains.get(s)
            line.append(TableCell(fmt_diff(g.difference) if g else "–", muted=g is None))
        rows.append(line)
        for s, g in c.gains.items():
            records.append({"dataset": c.base.dataset, "backbone": c.base.backbone,
                            "label_fraction": c.base.label_fraction, "budget": c.budget,
                            "strategy": s, "gain": g.difference.estimate,
                            "gain_low": g.difference.low, "gain_high": g.difference.high,
                            "p": g.p, "p_holm": c.gains_holm[s], "best_before": ",".join(r0.tied),
                            "best_after": ",".join(r1.tied), "change": c.change or "",
                            "one_budget_only": c.one_budget_only})
    cap = ("Rows of the suite re-run with more compute (the suite's [budget_check]: every "
           "strategy, variant and seed of the row, each cell with its budget multiplied: the "
           "cap on steps and, under the plateau rule, the patience). Best: the row's best at the "
           "suite's budget → at the larger one. Verdict: “changes” when the extra compute "
           "changes the row: a strategy's accuracy is told apart from its own at the suite's "
           "budget (its gain, Holm across the row's strategies, α = 0.05), or a pair told apart "
           "at one budget is told apart the other way round at the other; such a row is marked "
           "in the accuracy table. Told apart at one budget only: pairs whose test falls on "
           "either side of α at the two budgets while no strategy's accuracy changed (listed, "
           "not flagged). Per strategy: test accuracy at the larger budget minus at the "
           "suite's, in points, paired on the same seeds, label subsets and test examples "
           "[95% interval; the two runs of a seed are not independent, so the seed-paired "
           "differences alone carry the test].")
    return Table("budget_check", "Budget check: the verdicts at more compute", cap,
                 ["Dataset", "Backbone", "Labels", "Budget", "Best", "Verdict",
                  "Told apart at one budget only"] + strategies,
                 rows, pd.DataFrame(records), numeric_from=7, key_cols=2)


SECTIONS = [Section("budget_check", "table", budget_table, missing=None, order=13)]
