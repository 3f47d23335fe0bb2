"""Compute to accuracy (:func:`tlbench.analysis.savings.compute_to_accuracy`): the training examples,
seconds and joules each strategy spent until its validation accuracy first reached a target,
with ratios against the baseline ("transfer reached 80% with 9× fewer examples than scratch")."""
from __future__ import annotations

import math

import pandas as pd

from tlbench.report import data as D
from tlbench.report.sections import CLASSIFICATION_ONLY, ReportInput, Section
from tlbench.report.sections.label_savings import baselines
from tlbench.report.tables import Table, TableCell, fmt_count, fmt_num
from tlbench.analysis.savings import ComputeToAccuracy, compute_to_accuracy, fmt_ratio


def _results(inp: ReportInput) -> list[ComputeToAccuracy]:
    return compute_to_accuracy(inp.selected, inp.val_curves, inp.options.reach,
                               inp.options.reach_share)


def _ratio(base: ComputeToAccuracy | None, r: ComputeToAccuracy, what: str) -> tuple[str, float]:
    """("9× fewer", 9.0) for the baseline's mean over the strategy's; "≥ 3×" when the baseline
    never got there (what it spent in all is a lower bound); "" without a baseline."""
    if base is None or base.strategy == r.strategy or not r.seeds_reached:
        return "", math.nan
    mine = getattr(r, what)
    theirs = getattr(base, what) if base.seeds_reached else getattr(base, f"spent_{what}")
    if not (mine > 0 and theirs > 0):
        return "", math.nan
    ratio = theirs / mine
    prefix = "" if base.seeds_reached else "≥ "
    if ratio >= 1 or not base.seeds_reached:
        return f"{prefix}{fmt_ratio(ratio)} fewer", ratio
    return f"{fmt_ratio(1 / ratio)} more", ratio


def _amount(r: ComputeToAccuracy, what: str, fmt) -> TableCell:
    if r.seeds_reached:
        return TableCell(fmt(getattr(r, what)))
    spent = getattr(r, f"spent_{what}")
    return TableCell("not reached", muted=True,
                title=f"spent {fmt(spent)} without reaching it" if spent == spent else "")


def compute_table(results: list[ComputeToAccuracy], base_names: list[str],
                  strategies: list[str], fixed_target: bool, share: float) -> Table:
    order = {s: i for i, s in enumerate(strategies)}
    results = sorted(results, key=lambda r: (r.dataset, r.backbone, r.label_fraction,
                                             order.get(r.strategy, len(order)), r.strategy))
    by_block = {}
    for r in results:
        by_block.setdefault((r.dataset, r.backbone, r.label_fraction), {})[r.strategy] = r
    has_joules = any(r.joules == r.joules or r.spent_joules == r.spent_joules for r in results)
    rows, records, breaks, prev = [], [], [], None
    for r in results:
        block = (r.dataset, r.backbone, r.label_fraction)
        base = next((by_block[block][b] for b in base_names if b in by_block[block]), None)
        if prev is not None and block != prev:
            breaks.append(len(rows))
        prev = block
        ex_txt, ex_ratio = _ratio(base, r, "examples")
        sec_txt, sec_ratio = _ratio(base, r, "seconds")
        row = [TableCell(r.dataset), TableCell(r.backbone), TableCell(D.fraction_label(r.label_fraction)),
               TableCell(f"{100 * r.target:.1f}"), TableCell(r.strategy, bold=base is r),
               TableCell(f"{r.seeds_reached}/{r.seeds}"), _amount(r, "examples", fmt_count),
               _amount(r, "seconds", lambda v: fmt_num(v, 1))]
        if has_joules:
            row.append(_amount(r, "joules", fmt_count))
        row += [TableCell(ex_txt, bold=ex_ratio >= 2), TableCell(sec_txt, bold=sec_ratio >= 2)]
        rows.append(row)
        records.append(vars(r) | {"baseline": base.strategy if base else "",
                                  "examples_ratio": ex_ratio, "seconds_ratio": sec_ratio})
    target = ("the validation accuracy given by --reach" if fixed_target else
              f"{share:.0%} of the best strategy's (the highest mean over seeds of the best "
              "validation accuracy each cell's curve reached)")
    cap = ("Compute until the validation accuracy during training first reached the target, per "
           f"dataset, backbone and label budget; target: {target}. Read off each cell's "
           "evaluations during training (so at their granularity): the training examples seen, "
           "the training seconds (evaluation excluded)"
           + (" and the energy (joules, where measured)" if has_joules else "")
           + " at the first evaluation at or above the target, mean over the seeds that reached "
           "it (Reached). Fewer examples / seconds: the baseline's (bold strategy) over this "
           "strategy's; ≥: the baseline never reached the target, and what it spent in all is a "
           "lower bound. Bold ratio: at least 2×.")
    header = ["Dataset", "Backbone", "Labels", "Target val acc (%)", "Strategy", "Reached",
              "Examples", "Seconds"] + (["Joules"] if has_joules else []) + \
        ["Fewer examples", "Fewer seconds"]
    return Table("compute_to_accuracy", "Compute to reach a validation accuracy", cap, header,
                 rows, pd.DataFrame(records), numeric_from=5, key_cols=3, breaks=breaks)


def _table(inp: ReportInput) -> Table | None:
    results = _results(inp)
    if not results:
        return None
    return compute_table(results, baselines(inp), inp.strategies, inp.options.reach is not None,
                         inp.options.reach_share)


SECTIONS = [Section(
    "compute_to_accuracy", "table", _table, order=70,
    missing="No compute-to-accuracy table: no record has a validation curve (the evaluations "
            "during training that a strategy run by the training loop records).", tasks=CLASSIFICATION_ONLY)]
