"""The paired comparison table and the verdict sentences: in each row (dataset × backbone × label
fraction) every strategy against the row's best on the shared seeds and test examples
(:func:`tlbench.analysis.stats.compare_row`: paired t tests under the crossed seeds × examples model,
every pair of the row in one Holm–Bonferroni correction). The sentences say only what these
tests say, and nothing where the row has too few seeds for a verdict."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from tlbench.analysis import stats as S
from tlbench.report import data as D
from tlbench.report.sections import ReportInput, Section
from tlbench.report.tables import MARK, Table, TableCell, dataset_label, fmt_diff, fmt_score
from tlbench.analysis.selection import group_scores

BLOCK = ["dataset", "backbone", "label_fraction"]


@dataclass(frozen=True)
class Row:
    """One row's comparisons, and the display facts the sentences need."""
    dataset: str
    backbone: str
    label_fraction: float
    shift: bool
    result: S.RowComparison
    oracles: frozenset[str]
    #: the row's trained cells ran a fixed budget of steps, not each to its plateau
    equal_compute: bool = False
    #: what the row's scores are (the task's score label: "accuracy", "per-image AP")
    score_label: str = "accuracy"


def row_comparisons(selected: pd.DataFrame, evidence: Mapping | None,
                    oracles: set[str], shift: Mapping[str, bool], metric: str = "test_acc",
                    score_label: str = "accuracy") -> list[Row]:
    """Every row with at least two strategies, compared on ``metric`` (oracles are never the best)."""
    rows = []
    for (dataset, backbone, frac), g in selected.groupby(BLOCK, sort=True):
        scores = {s: group_scores(gs, metric, evidence)
                  for s, gs in g.groupby("strategy", sort=True)}
        if len(scores) < 2:
            continue
        result = S.compare_row(scores, candidates=[s for s in scores if s not in oracles])
        if result is not None:
            rows.append(Row(dataset, backbone, float(frac), bool(shift.get(dataset, False)),
                            result, frozenset(oracles & set(scores)), D.equal_compute(g), score_label))
    return rows


def rows_of(inp: ReportInput) -> list[Row]:
    """The report's compared rows, computed once per report (the comparison table, the verdicts,
    the accuracy table's bold and the budget check read the same)."""
    return inp.once("comparison_rows", lambda: row_comparisons(
        inp.selected, inp.evidence, D.oracles(inp.frame), inp.shift, inp.test_metric, inp.score_label))


def best_of_rows(inp: ReportInput) -> dict[tuple, tuple[str, ...]]:
    """(dataset, backbone, label fraction) -> the row's tied best strategies: the one definition
    of "best" every table reads."""
    return {(r.dataset, r.backbone, r.label_fraction): r.result.tied for r in rows_of(inp)}


# ---------------------------------------------------------------------------- table

def comparison_table(rows: list[Row], strategies: list[str]) -> Table | None:
    if not rows:
        return None
    most = ("the most correct answers" if rows[0].score_label == "accuracy"
            else f"the highest {rows[0].score_label} summed")
    cells, records, breaks, prev, seed_level, no_verdict = [], [], [], None, False, set()
    for row in rows:
        if prev is not None and prev != (row.dataset, row.backbone):
            breaks.append(len(cells))
        prev = (row.dataset, row.backbone)
        r = row.result
        if r.no_verdict:
            no_verdict.add(r.no_verdict)
        line = [TableCell(dataset_label(row.dataset, row.shift)), TableCell(row.backbone),
                TableCell(D.fraction_label(row.label_fraction))]
        for s in strategies:
            c = r.of(s)
            if s == r.best:
                line.append(TableCell(f"{'tied ' if len(r.tied) > 1 else ''}best, "
                                 f"{100 * r.best_mean:.1f}", bold=True))
                records.append(_record(row, s, None))
            elif c is None:
                line.append(TableCell("–", muted=True, title="no successful record"))
            else:
                seed_level |= not c.per_example
                tie = " (tied best)" if s in r.tied else ""
                line.append(TableCell(f"{fmt_diff(c.difference)}, {p_text(c.p_holm)}{tie}",
                                 bold=bool(tie), mark="" if c.told_apart else MARK,
                                 title=f"{c.seeds} seed(s) × {c.examples or 'seed-level'} "
                                       f"paired; p before Holm {_p(c.p)}; {c.df:.1f} df"))
                records.append(_record(row, s, c))
        cells.append(line)
    cap = ("Each strategy minus the row's best, in points: the mean difference over the shared "
           "seeds and test examples [95% interval of a paired t test whose variance counts both "
           "the seeds' spread and the test set's, docs: Statistics; one comparison's interval, "
           "not adjusted for the row's others] and the two-sided p-value after Holm–Bonferroni "
           "across every pair of strategies in the row, which alone decides ○. The best is the "
           f"non-oracle strategy with {most} over the seeds × test examples the "
           "row shares; on an exact tie every tied strategy is bold and the first in the suite's "
           f"order is the reference. {MARK}: cannot be told apart from the best at α = {S.ALPHA:g} "
           "after the correction. That is not evidence that the two are equally good: the test "
           "may lack the examples or seeds to see a difference.")
    if any(r.equal_compute for r in rows):
        cap += (" Rows trained at equal compute (stop = \"budget\": every trained cell ran its "
                "planned steps, not to its own plateau): their differences describe that budget "
                "as much as the strategies; the budget check ([budget_check]) shows whether more "
                "compute would change them.")
    for why in sorted(no_verdict):
        cap += f" Rows with {why}: intervals only, no strategy is told apart."
    if seed_level:
        cap += (" Rows without per-example evidence (older records) are compared by seed means "
                "only: with few seeds such a test can rarely tell anything apart.")
    oracles = sorted(set().union(*(r.oracles for r in rows)))
    if oracles:
        cap += (f" {', '.join(oracles)} (role oracle) is compared but never the best; it counts "
                "in the correction.")
    header = ["Dataset", "Backbone", "Labels"] + strategies
    return Table("comparison", "Paired comparison with the row's best", cap, header, cells,
                 pd.DataFrame(records), numeric_from=3, key_cols=2, breaks=breaks)


def _record(row: Row, strategy: str, c: S.Comparison | None) -> dict:
    base = {"dataset": row.dataset, "backbone": row.backbone,
            "label_fraction": row.label_fraction, "strategy": strategy,
            "best": row.result.best, "tied": ",".join(row.result.tied),
            "best_mean": row.result.best_mean, "no_verdict": row.result.no_verdict or ""}
    if c is None:
        return base | {"difference": 0.0, "diff_low": math.nan, "diff_high": math.nan,
                       "p": math.nan, "p_holm": math.nan, "told_apart": False, "seeds": 0,
                       "examples": 0, "per_example": True, "df": math.nan}
    return base | {"difference": c.difference.estimate, "diff_low": c.difference.low,
                   "diff_high": c.difference.high, "p": c.p, "p_holm": c.p_holm,
                   "told_apart": c.told_apart, "seeds": c.seeds, "examples": c.examples,
                   "per_example": c.per_example, "df": c.df}


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def p_text(p: float) -> str:
    """``p = 0.012`` or ``p < 0.001``."""
    text = _p(p)
    return text.replace("< ", "p < ") if text.startswith("<") else f"p = {text}"


# ---------------------------------------------------------------------------- sentences

def verdict(row: Row) -> str:
    """The row in one sentence, from its tests only: which strategy is best (or which tie), which
    are told apart from it (with the difference and its interval), which cannot be; with too
    few seeds, that there is no verdict."""
    r = row.result
    where = (place(row.dataset, row.backbone, row.label_fraction, row.shift)
             + (", at equal compute (a fixed budget of steps)" if row.equal_compute else ""))
    score = fmt_score(r.best_mean, row.score_label)
    if len(r.tied) > 1:
        parts = [f"{where}: {join_names(list(r.tied))} tie for best, {score}"]
    else:
        parts = [f"{where}: {r.best} is best, {score}"]
    if r.no_verdict:
        return f"{parts[0]}; no verdict ({r.no_verdict})."
    apart = [c for c in r.comparisons if c.told_apart]
    for c in sorted(apart, key=lambda c: c.difference.estimate, reverse=True):
        d = c.difference
        name = f"{c.strategy} (oracle)" if c.strategy in row.oracles else c.strategy
        if d.estimate < 0:
            how = f"{-100 * d.estimate:.1f} points lower [{-100 * d.high:.1f}, {-100 * d.low:.1f}]"
        else:
            how = f"{100 * d.estimate:.1f} points higher [{100 * d.low:.1f}, {100 * d.high:.1f}]"
        parts.append(f"{name} is {how}, {p_text(c.p_holm)} after Holm")
    def name(c):
        return c.strategy + (" (oracle)" if c.strategy in row.oracles else "")
    untested = [c for c in r.comparisons if c.seeds < S.MIN_SEEDS]
    close = [name(c) for c in r.comparisons
             if not c.told_apart and c.strategy not in r.tied and c not in untested]
    if close:
        parts.append(f"{join_names(close)} cannot be told apart from it")
    if untested:
        parts.append(f"{join_names([name(c) for c in untested])}: too few shared seeds for a verdict")
    if not all(c.per_example for c in r.comparisons):
        parts.append("(seed-level test: some records lack per-example evidence)")
    return "; ".join(parts) + "."


def place(dataset: str, backbone: str, label_fraction: float, shift: bool) -> str:
    """The row a sentence is about: ``digits (target) · resnet18 · 10% of the labels``."""
    return (f"{dataset_label(dataset, shift)} · {backbone} · {D.fraction_label(label_fraction)} "
            "of the labels")


def join_names(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


SECTIONS = [
    Section("comparison", "table", lambda inp: comparison_table(rows_of(inp), inp.strategies),
            missing="No paired comparison: no row has two strategies with results.", order=12),
]
