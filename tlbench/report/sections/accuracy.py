"""The accuracy table (and the same table for macro-F1): rows dataset × backbone × label
fraction, columns strategies: mean with its 95% interval (:func:`tlbench.analysis.selection.summarize_seeds`),
the row's best in bold (the comparison's definition: the most correct answers over the shared
seeds × test examples, exact ties all bold), a mark on rows whose verdict changes when the budget
check re-runs them with more compute (:mod:`.budget_check`). Which strategies can be told apart
from the best is the comparison section's (:mod:`.comparison`)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from tlbench.report import data as D
from tlbench.report.sections import CLASSIFICATION_ONLY, ReportInput, Section
from tlbench.report.sections.budget_check import changed_rows
from tlbench.report.sections.comparison import best_of_rows
from tlbench.report.tables import BUDGET_MARK, Table, TableCell, dataset_label, fmt_acc
from tlbench.analysis.selection import summarize_seeds

KEY = ["dataset", "backbone", "label_fraction", "strategy"]


@dataclass
class _Flags:
    """What the caption must explain: intervals over seeds only, rows the budget check flags,
    seeds that chose different variants."""
    seed_level: bool = False
    budget_changed: bool = False
    split_choice: bool = False


@dataclass
class _Inputs:
    strategies: list[str]
    metric: str
    expected_seeds: int
    summary: dict           # (dataset, backbone, fraction, strategy) -> summary row
    statuses: dict          # same key -> sorted statuses seen
    best: dict | None       # (dataset, backbone, fraction) -> the tied best strategies
    changed: dict           # (dataset, backbone, fraction) -> what the budget check found changed
    oracles: set[str]


def accuracy_table(df: pd.DataFrame, summary: pd.DataFrame, strategies: list[str],
                   best: dict | None = None, changed: dict | None = None,
                   metric: str = "test_acc", name: str = "accuracy",
                   what: str = "Test accuracy (%)") -> Table:
    """Rows: dataset × backbone × label fraction; columns: strategies. ``best``: each row's best
    strategies (default: the highest mean); ``changed``: rows the budget check flags."""
    shift = df.groupby("dataset")["has_target_domain"].any().to_dict()
    keys = (df[["dataset", "backbone", "label_fraction"]].drop_duplicates()
            .sort_values(["dataset", "backbone", "label_fraction"]).itertuples(index=False))
    inputs = _Inputs(
        strategies, metric, int(df["seed"].nunique()),
        {tuple(getattr(r, k) for k in KEY): r for r in summary.itertuples(index=False)},
        df.groupby(KEY)["status"].agg(lambda s: sorted(set(s))).to_dict(),
        best, changed or {}, D.oracles(df))  # by declared role, never by label
    flags = _Flags()
    rows, records, breaks, prev = [], [], [], None
    for dataset, backbone, frac in keys:
        if prev is not None and prev != (dataset, backbone):
            breaks.append(len(rows))
        prev = (dataset, backbone)
        change = inputs.changed.get((dataset, backbone, frac))
        flags.budget_changed |= change is not None
        row = [TableCell(dataset_label(dataset, shift.get(dataset, False))), TableCell(backbone),
               TableCell(D.fraction_label(frac), mark=BUDGET_MARK if change else "",
                    title=change or "")]
        cells, recs = _row(inputs, (dataset, backbone, frac), flags)
        rows.append(row + cells)
        records += recs
    header = ["Dataset", "Backbone", "Labels"] + strategies
    return Table(name, f"{what}: mean [95% interval]",
                 _caption(what, inputs, flags, shift, strategies), header, rows,
                 pd.DataFrame(records), numeric_from=3, key_cols=2, breaks=breaks)


def _row(inp: _Inputs, block: tuple, flags: _Flags) -> tuple[list[TableCell], list[dict]]:
    """The strategy cells of one row and their CSV records."""
    present = {s: inp.summary[(*block, s)] for s in inp.strategies if (*block, s) in inp.summary}
    rivals = {s: r for s, r in present.items() if s not in inp.oracles}
    if inp.best is not None and block in inp.best:
        best = list(inp.best[block])
    else:
        best_mean = max((r.mean for r in rivals.values()), default=math.nan)
        best = [s for s, r in rivals.items() if r.mean == best_mean]
    cells, records = [], []
    for s in inp.strategies:
        rec = dict(zip(KEY, (*block, s)))
        if s not in present:
            cell, note = _absent_cell(inp.statuses.get((*block, s)))
            cells.append(cell)
            if note:
                records.append(rec | _EMPTY_RECORD | {"note": note})
            continue
        r = present[s]
        flags.seed_level |= r.interval == "seeds"
        flags.split_choice |= r.agreement < 1
        text = fmt_acc(r.mean, r.ci_low, r.ci_high)
        if r.seeds < inp.expected_seeds:
            text += f" (n={r.seeds})"
        tip = (f"variant {r.variant} (chosen by {r.agreement:.0%} of the seeds); {r.seeds} "
               f"seed(s); interval over {r.interval}")
        cells.append(TableCell(text, bold=s in best, title=tip))
        records.append(rec | {"variant": r.variant, "agreement": r.agreement, "seeds": r.seeds,
                              "mean": r.mean, "std": r.std, "ci_low": r.ci_low,
                              "ci_high": r.ci_high, "interval": r.interval, "best": s in best,
                              "note": "oracle" if s in inp.oracles else ""})
    return cells, records


_EMPTY_RECORD = {"variant": "", "agreement": math.nan, "seeds": 0, "mean": math.nan,
                 "std": math.nan, "ci_low": math.nan, "ci_high": math.nan, "interval": "",
                 "best": False}


def _absent_cell(statuses: list[str] | None) -> tuple[TableCell, str | None]:
    """The cell of a strategy without a successful record, and its CSV note (None: not run)."""
    if statuses is None:
        return TableCell("–", muted=True, title="not run"), None
    word = statuses[0] if len(statuses) == 1 and statuses[0] in ("skipped", "diverged") \
        else "failed"
    return TableCell(word, muted=True, title="no successful record: see 'Failed and skipped cells'"), word


def _caption(what: str, inp: _Inputs, flags: _Flags, shift: dict[str, bool],
             strategies: list[str]) -> str:
    n = inp.expected_seeds
    seeds_txt = f"n = {n} seed{'s' if n != 1 else ''} unless noted"
    most = "the most correct answers" if inp.metric == "test_acc" else "the highest score summed"
    bold = (f"{most} over the seeds × test examples the row shares (exact ties: "
            "all bold)" if inp.best is not None else "the highest mean in the row")
    cap = [f"{what} of the hyper-parameter variant each seed selected on its validation split: "
           f"mean over seeds ({seeds_txt}) [95% interval counting the seeds' spread and the test "
           f"set's, docs: Statistics; clipped to 0–100]. Bold: {bold}; whether the others can "
           "be told apart from it: see the paired comparison table."]
    if flags.split_choice:
        cap.append("Where the seeds chose different variants, the tooltip names the most chosen "
                   "and the share of seeds that chose it; the choice's noise is inside the "
                   "interval.")
    if flags.seed_level:
        cap.append("Entries without per-example evidence (older records; metrics other than "
                   "accuracy) have an interval over seeds only: it leaves the test-set noise "
                   "out, and one seed gets none.")
    if flags.budget_changed:
        cap.append(f"{BUDGET_MARK}: the row's verdict changes when the budget check re-runs it "
                   "with more compute (the budget-check table says what changed): these "
                   "numbers describe this budget, not the strategies at their best.")
    if any(shift.values()):
        cap.append("For domain-shift pairs (target) the accuracy is on the target domain; "
                   "transfer strategies there are source-only baselines.")
    shown_oracles = [s for s in strategies if s in inp.oracles]
    if shown_oracles:
        cap.append(f"{', '.join(shown_oracles)} {'is' if len(shown_oracles) == 1 else 'are'} "
                   "trained on target labels (role oracle): an upper bound, left out of bold, "
                   "comparisons and ranks.")
    cap.append("“failed”/“skipped”: no successful record (see Failed and skipped cells); "
               "“–”: not run.")
    return " ".join(cap)


def _accuracy(inp: ReportInput) -> Table:
    """The table of the task's score: ``accuracy`` for classification, else named by the score
    (``ap``: detection's per-image AP)."""
    name = "accuracy" if inp.score == "acc" else inp.score
    return accuracy_table(inp.frame, inp.summary, inp.strategies, best_of_rows(inp), changed_rows(inp),
                          metric=inp.test_metric, name=name, what=f"Test {inp.score_label} (%)")


def _macro_f1(inp: ReportInput) -> Table | None:
    if not inp.selected["test_macro_f1"].notna().any():
        return None
    f1 = summarize_seeds(inp.selected.dropna(subset=["test_macro_f1"]), "test_macro_f1")
    return accuracy_table(inp.frame, f1, inp.strategies, metric="test_macro_f1",
                          name="macro_f1", what="Test macro-F1 (%)")


SECTIONS = [
    Section("accuracy", "table", _accuracy, order=10),
    Section("macro_f1", "table", _macro_f1, place="details", order=10,
            label="Macro-F1 table", tasks=CLASSIFICATION_ONLY),
]
