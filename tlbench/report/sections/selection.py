"""The selected-variants table: which hyper-parameter variant of each setting was chosen on
validation accuracy (shown on the page only when some setting had more than one)."""
from __future__ import annotations

import math

import pandas as pd

from tlbench.report import data as D
from tlbench.report.sections import ReportInput, Section
from tlbench.report.tables import Cell, Table


def selection_table(df: pd.DataFrame, selected: pd.DataFrame, strategies: list[str]) -> Table:
    ok = df[df["status"] == "ok"]
    tried = ok.groupby(D.GROUP)["variant"].nunique().rename("variants_tried")
    chosen = (selected.groupby(D.GROUP + ["variant"])
              .agg(val_acc_mean=("val_acc", "mean"), seeds=("seed", "count")).reset_index()
              .merge(tried.reset_index(), on=D.GROUP))
    rank = {s: i for i, s in enumerate(strategies)}
    chosen = chosen.sort_values(["dataset", "backbone", "strategy", "label_fraction"],
                                key=lambda c: c.map(rank) if c.name == "strategy" else c)
    rows = [[Cell(r.dataset), Cell(r.backbone), Cell(r.strategy),
             Cell(D.fraction_label(r.label_fraction)), Cell(r.variant),
             Cell(f"{100 * r.val_acc_mean:.1f}" if not math.isnan(r.val_acc_mean) else "–"),
             Cell(str(r.variants_tried))] for r in chosen.itertuples(index=False)]
    cap = ("The hyper-parameter variant of each setting with the best mean validation accuracy "
           "over seeds (source-domain validation for shift pairs); its test numbers are the "
           "ones reported. Test accuracy takes no part in the choice.")
    return Table("selected_variants", "Selected hyper-parameter variants", cap,
                 ["Dataset", "Backbone", "Strategy", "Labels", "Variant", "Val acc (%)",
                  "Variants tried"], rows, chosen.reset_index(drop=True), numeric_from=5)


def _several_variants(inp: ReportInput) -> bool:
    return bool((inp.frame.groupby(D.GROUP)["variant"].nunique() > 1).any())


SECTIONS = [Section("selected_variants", "table",
                    lambda inp: selection_table(inp.frame, inp.selected, inp.strategies),
                    place="details", order=20, label="Selected hyper-parameter variants",
                    shown=_several_variants)]
