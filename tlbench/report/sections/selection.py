"""The selected-variants table: which hyper-parameter variant of each setting was chosen on
validation accuracy (shown on the page only when some setting had more than one)."""
from __future__ import annotations

import math

import pandas as pd

from tlbench.report import data as D
from tlbench.report.sections import ReportInput, Section
from tlbench.report.tables import Table, TableCell


def tuning_budget(df: pd.DataFrame, tuning: list[dict]) -> pd.DataFrame:
    """Per setting: configurations tried (``trials``) and optimizer steps trained over every seed
    (``steps``; NaN where a strategy trains no steps). A search's numbers come from the store's
    ``tuning`` meta, which also counts its pruned rungs; a grid's from its records."""
    ok = df[df["status"] == "ok"]
    steps = ok["steps"] if "steps" in ok else pd.Series(math.nan, index=ok.index)
    grid = (ok.assign(steps=steps).groupby(D.GROUP)
            .agg(trials=("variant", "nunique"), steps=("steps", lambda s: s.sum(min_count=len(s)))).reset_index())
    searched = pd.DataFrame(tuning, columns=D.GROUP + ["trials", "steps"]).astype({"steps": float})
    keys = set(map(tuple, searched[D.GROUP].itertuples(index=False)))
    grid = grid[[tuple(k) not in keys for k in grid[D.GROUP].itertuples(index=False)]]
    return pd.concat([grid, searched], ignore_index=True)


def selection_table(df: pd.DataFrame, selected: pd.DataFrame, strategies: list[str],
                    tuning: list[dict] = (), metric: str = "val_acc", label: str = "accuracy") -> Table:
    """The variant each setting selected on validation (``metric``: the task's ``val_<score>``,
    called ``label``) and its tuning budget."""
    chosen = (selected.groupby(D.GROUP + ["variant"])
              .agg(**{f"{metric}_mean": (metric, "mean")}, seeds=("seed", "count")).reset_index()
              .merge(tuning_budget(df, list(tuning)), on=D.GROUP))
    rank = {s: i for i, s in enumerate(strategies)}
    chosen = chosen.sort_values(["dataset", "backbone", "strategy", "label_fraction"],
                                key=lambda c: c.map(rank) if c.name == "strategy" else c)
    rows = [[TableCell(r["dataset"]), TableCell(r["backbone"]), TableCell(r["strategy"]),
             TableCell(D.fraction_label(r["label_fraction"])), TableCell(r["variant"]),
             TableCell(f"{100 * r[f'{metric}_mean']:.1f}" if not math.isnan(r[f"{metric}_mean"]) else "–"),
             TableCell(str(r["trials"])), TableCell(f"{r['steps']:,.0f}" if not math.isnan(r["steps"]) else "–")]
            for r in chosen.to_dict("records")]
    cap = (f"The hyper-parameter variant of each setting with the best mean validation {label} "
           "over seeds (source-domain validation for shift pairs); its test numbers are the "
           f"ones reported. Test {label} takes no part in the choice. Tuning budget: the "
           "configurations tried and the optimizer steps trained over every seed, a search's "
           "pruned rungs included (– for a strategy that trains no steps).")
    return Table("selected_variants", "Selected hyper-parameter variants", cap,
                 ["Dataset", "Backbone", "Strategy", "Labels", "Variant",
                  "Val acc (%)" if label == "accuracy" else f"Val {label} (%)",
                  "Trials", "Steps"], rows, chosen.reset_index(drop=True), numeric_from=5)


def _several_variants(inp: ReportInput) -> bool:
    return bool((inp.frame.groupby(D.GROUP)["variant"].nunique() > 1).any())


SECTIONS = [Section("selected_variants", "table",
                    lambda inp: selection_table(inp.frame, inp.selected, inp.strategies, inp.meta.get("tuning", []),
                                                inp.val_metric, inp.score_label),
                    place="details", order=20, label="Selected hyper-parameter variants",
                    shown=_several_variants)]
