"""The accuracy table (and the same table for macro-F1): rows dataset × backbone × label
fraction, columns strategies, the row's best in bold and a mark on those not significantly worse."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from tlbench.report import data as D
from tlbench.report.sections import ReportInput, Section
from tlbench.report.tables import MARK, Cell, Table, dataset_label, fmt_acc
from tlbench.selection import summarize

KEY = ["dataset", "backbone", "label_fraction", "strategy"]


@dataclass
class _Flags:
    """What the caption must explain: some entries were tested, some could not be, some marked."""
    tested: bool = False
    untested: bool = False
    marked: bool = False


@dataclass
class _Inputs:
    strategies: list[str]
    metric: str
    expected_seeds: int
    summary: dict           # (dataset, backbone, fraction, strategy) -> summary row
    statuses: dict          # same key -> sorted statuses seen
    per_seed: dict          # same key -> metric by seed (selected variant)
    oracles: set[str]


def accuracy_table(df: pd.DataFrame, selected: pd.DataFrame, summary: pd.DataFrame,
                   strategies: list[str], metric: str = "test_acc",
                   name: str = "accuracy", what: str = "Test accuracy (%)") -> Table:
    """Rows: dataset × backbone × label fraction; columns: strategies."""
    shift = df.groupby("dataset")["has_target_domain"].any().to_dict()
    keys = (df[["dataset", "backbone", "label_fraction"]].drop_duplicates()
            .sort_values(["dataset", "backbone", "label_fraction"]).itertuples(index=False))
    inputs = _Inputs(
        strategies, metric, int(df["seed"].nunique()),
        {tuple(getattr(r, k) for k in KEY): r for r in summary.itertuples(index=False)},
        df.groupby(KEY)["status"].agg(lambda s: sorted(set(s))).to_dict(),
        {k: g.set_index("seed")[metric] for k, g in selected.groupby(KEY)},
        D.oracles(df))  # by declared role, never by label
    flags = _Flags()
    rows, records, breaks, prev = [], [], [], None
    for dataset, backbone, frac in keys:
        if prev is not None and prev != (dataset, backbone):
            breaks.append(len(rows))
        prev = (dataset, backbone)
        row = [Cell(dataset_label(dataset, shift.get(dataset, False))), Cell(backbone),
               Cell(D.fraction_label(frac))]
        cells, recs = _row(inputs, (dataset, backbone, frac), flags)
        rows.append(row + cells)
        records += recs
    header = ["Dataset", "Backbone", "Labels"] + strategies
    return Table(name, f"{what}: mean ± 95% CI over seeds",
                 _caption(what, inputs, flags, shift, strategies), header, rows,
                 pd.DataFrame(records), numeric_from=3, key_cols=2, breaks=breaks)


def _row(inp: _Inputs, block: tuple, flags: _Flags) -> tuple[list[Cell], list[dict]]:
    """The strategy cells of one row and their CSV records."""
    present = {s: inp.summary[(*block, s)] for s in inp.strategies if (*block, s) in inp.summary}
    rivals = {s: r for s, r in present.items() if s not in inp.oracles}
    best_mean = max((r.mean for r in rivals.values()), default=math.nan)
    best = [s for s, r in rivals.items() if abs(r.mean - best_mean) <= 1e-12]
    ref = best[0] if best else None
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
        p, n_pairs, mark = math.nan, 0, False
        if s not in inp.oracles and s not in best and ref is not None:
            p, n_pairs = D.paired_worse_test(inp.per_seed[(*block, ref)], inp.per_seed[(*block, s)])
            if n_pairs >= 2:
                flags.tested = True
                mark = p >= D.ALPHA
                flags.marked |= mark
            else:
                flags.untested = True
        text = fmt_acc(r.mean, r.ci_half)
        if r.seeds < inp.expected_seeds:
            text += f" (n={r.seeds})"
        tip = f"variant {r.variant}; {r.seeds} seed(s)"
        if not math.isnan(p):
            tip += f"; paired t-test vs {ref}: p = {p:.3g}"
        cells.append(Cell(text, bold=s in best, mark=mark, title=tip))
        records.append(rec | {"variant": r.variant, "seeds": r.seeds, "mean": r.mean,
                              "std": r.std, "ci_half": r.ci_half, "ci_low": r.ci_low,
                              "ci_high": r.ci_high, "best": s in best,
                              "not_significantly_worse": mark, "p_value": p,
                              "paired_seeds": n_pairs,
                              "note": "oracle" if s in inp.oracles else ""})
    return cells, records


_EMPTY_RECORD = {"variant": "", "seeds": 0, "mean": math.nan, "std": math.nan,
                 "ci_half": math.nan, "ci_low": math.nan, "ci_high": math.nan, "best": False,
                 "not_significantly_worse": False, "p_value": math.nan, "paired_seeds": 0}


def _absent_cell(statuses: list[str] | None) -> tuple[Cell, str | None]:
    """The cell of a strategy without a successful record, and its CSV note (None: not run)."""
    if statuses is None:
        return Cell("–", muted=True, title="not run"), None
    word = statuses[0] if len(statuses) == 1 and statuses[0] in ("skipped", "diverged") \
        else "failed"
    return Cell(word, muted=True, title="no successful record: see 'Failed and skipped cells'"), word


def _caption(what: str, inp: _Inputs, flags: _Flags, shift: dict[str, bool],
             strategies: list[str]) -> str:
    n = inp.expected_seeds
    seeds_txt = f"n = {n} seed{'s' if n != 1 else ''} unless noted"
    cap = [f"{what} of the hyper-parameter variant selected on validation accuracy: mean ± "
           f"half-width of the 95% Student-t confidence interval over seeds ({seeds_txt}; "
           "one seed: no interval). Bold: best mean in the row."]
    if flags.tested:
        cap.append(f"{MARK}: not significantly worse than the best (one-sided paired t-test "
                   f"over seeds, α = {D.ALPHA:g})." +
                   (" Entries with fewer than 2 seeds paired with the best are not tested."
                    if flags.untested else ""))
    else:
        cap.append("No significance marks: fewer than 2 seeds paired with the best, so the "
                   f"paired t-test (α = {D.ALPHA:g}) could not be run.")
    if any(shift.values()):
        cap.append("For domain-shift pairs (target) the accuracy is on the target domain; "
                   "transfer strategies there are source-only baselines.")
    shown_oracles = [s for s in strategies if s in inp.oracles]
    if shown_oracles:
        cap.append(f"{', '.join(shown_oracles)} {'is' if len(shown_oracles) == 1 else 'are'} "
                   "trained on target labels (role oracle): an upper bound, left out of bold, "
                   "marks and ranks.")
    cap.append("“failed”/“skipped”: no successful record (see Failed and skipped cells); "
               "“–”: not run.")
    return " ".join(cap)


def _accuracy(inp: ReportInput) -> Table:
    return accuracy_table(inp.frame, inp.selected, inp.summary, inp.strategies)


def _macro_f1(inp: ReportInput) -> Table | None:
    if not inp.selected["test_macro_f1"].notna().any():
        return None
    f1 = summarize(inp.selected.dropna(subset=["test_macro_f1"]), "test_macro_f1")
    return accuracy_table(inp.frame, inp.selected, f1, inp.strategies, metric="test_macro_f1",
                          name="macro_f1", what="Test macro-F1 (%)")


SECTIONS = [
    Section("accuracy", "table", _accuracy, order=10),
    Section("macro_f1", "table", _macro_f1, place="details", order=10,
            label="Macro-F1 table"),
]
