"""The budget check: the rows a suite's ``[budget_check]`` re-ran with more compute, the verdict
at each budget, whether it changed, and what the extra compute bought each strategy (paired on
the same seeds, label subsets and test examples). A row whose verdict changes is marked in the
accuracy table and its verdict sentence: its numbers describe the budget, not the strategies."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tlbench import stats as S
from tlbench.report import data as D
from tlbench.report.sections import ReportInput, Section
from tlbench.report.sections.comparison import Row, _rows, row_comparisons
from tlbench.report.tables import Cell, Table, dataset_label, fmt_diff
from tlbench.selection import group_scores

BLOCK = ("dataset", "backbone", "label_fraction")


@dataclass(frozen=True)
class Check:
    """One re-run row: its comparison at the suite's budget and at ``budget`` times it, the
    paired gain of each strategy, and what changed (None: the same verdict)."""
    base: Row
    rerun: Row
    budget: float
    gains: dict[str, S.Difference]
    change: str | None


def claims(row: Row) -> set[str]:
    """The row's verdict as statements: every pair told apart, written "winner > loser"."""
    out = set()
    for x, y, c in row.result.pairs:
        if c.told_apart:
            out.add(f"{y} > {x}" if c.difference.estimate > 0 else f"{x} > {y}")
    return out


def what_changed(base: Row, rerun: Row, budget: float) -> str | None:
    """The change of verdict between the two budgets, in words; None when the same."""
    if base.result.no_verdict or rerun.result.no_verdict:
        return None
    before, after = claims(base), claims(rerun)
    if before == after:
        return None
    parts = []
    if before - after:
        parts.append(f"told apart at 1× only: {', '.join(sorted(before - after))}")
    if after - before:
        parts.append(f"told apart at {budget:g}× only: {', '.join(sorted(after - before))}")
    return "; ".join(parts)


def checks(inp: ReportInput) -> list[Check]:
    def compute():
        if inp.check.empty:
            return []
        base = {(r.dataset, r.backbone, r.label_fraction): r for r in _rows(inp)}
        out = []
        for budget in D.check_budgets(inp.check):
            frame = D.at_budget(inp.check, budget)
            selected = D.select(frame)
            for rerun in row_comparisons(selected, inp.evidence, D.oracles(inp.frame), inp.shift):
                key = (rerun.dataset, rerun.backbone, rerun.label_fraction)
                if key not in base:
                    continue
                gains = {}
                mask = (inp.selected[list(BLOCK)] == pd.Series(key, index=list(BLOCK))).all(axis=1)
                before = inp.selected[mask]
                after = selected[(selected[list(BLOCK)] == pd.Series(key, index=list(BLOCK))).all(axis=1)]
                for s, g in after.groupby("strategy"):
                    b = before[before["strategy"] == s]
                    if not b.empty:
                        gains[s] = S.paired_difference(group_scores(b, "test_acc", inp.evidence),
                                                       group_scores(g, "test_acc", inp.evidence))
                out.append(Check(base[key], rerun, budget, gains,
                                 what_changed(base[key], rerun, budget)))
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
        line = [Cell(dataset_label(c.base.dataset, c.base.shift)), Cell(c.base.backbone),
                Cell(D.fraction_label(c.base.label_fraction)), Cell(f"{c.budget:g}×"),
                Cell(f"{', '.join(r0.tied)} → {', '.join(r1.tied)}"),
                Cell("no verdict" if r0.no_verdict else "changes" if c.change else "same",
                     bold=bool(c.change), title=c.change or (r0.no_verdict or ""))]
        for s in strategies:
            g = c.gains.get(s)
            line.append(Cell(fmt_diff(g.difference) if g else "–", muted=g is None))
        rows.append(line)
        for s, g in c.gains.items():
            records.append({"dataset": c.base.dataset, "backbone": c.base.backbone,
                            "label_fraction": c.base.label_fraction, "budget": c.budget,
                            "strategy": s, "gain": g.difference.estimate,
                            "gain_low": g.difference.low, "gain_high": g.difference.high,
                            "p": g.p, "best_before": ",".join(r0.tied),
                            "best_after": ",".join(r1.tied), "change": c.change or ""})
    cap = ("Rows of the suite re-run with more compute (the suite's [budget_check]: every "
           "strategy, variant and seed of the row, each cell with its budget multiplied: the "
           "cap on steps and, under the plateau rule, the patience). Best: the row's best at the "
           "suite's budget → at the larger one. Verdict: whether the set of pairs told apart "
           "(α = 0.05, Holm across the row's pairs) is the same at both budgets; a row that "
           "changes is marked in the accuracy table. Per strategy: test accuracy at the larger "
           "budget minus at the suite's, in points, paired on the same seeds, label subsets and "
           "test examples [95% interval].")
    return Table("budget_check", "Budget check: the verdicts at more compute", cap,
                 ["Dataset", "Backbone", "Labels", "Budget", "Best", "Verdict"] + strategies,
                 rows, pd.DataFrame(records), numeric_from=6, key_cols=2)


SECTIONS = [Section("budget_check", "table", budget_table, missing=None, order=13)]
