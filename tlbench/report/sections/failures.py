"""The failures tables: the settings without one successful record, and every record that did
not finish with its error."""
from __future__ import annotations

import pandas as pd

from tlbench.report import data as D
from tlbench.report.sections import Section
from tlbench.report.tables import Table, TableCell


def failures_table(df: pd.DataFrame) -> Table | None:
    bad = df[df["status"] != "ok"].sort_values(
        ["status", "dataset", "backbone", "strategy", "label_fraction", "seed", "variant"])
    if bad.empty:
        return None
    rows = [[TableCell(r.status), TableCell(r.dataset), TableCell(r.backbone), TableCell(r.strategy),
             TableCell(D.fraction_label(r.label_fraction)), TableCell(str(r.seed)), TableCell(r.variant),
             TableCell(D.error_summary(r.error) or "(no error message)", title=r.error[-2000:])]
            for r in bad.itertuples(index=False)]
    counts = ", ".join(f"{c} {s}" for s, c in bad["status"].value_counts().items())
    cap = (f"Every record that did not finish ({counts}); none of them enters a mean. The error "
           "is the last line of the message; failures.csv has the full text.")
    cols = ["cell_id", "status", "dataset", "backbone", "strategy", "variant", "seed",
            "label_fraction", "error"]
    header = ["Status", "Dataset", "Backbone", "Strategy", "Labels", "Seed", "Variant", "Error"]
    return Table("failures", "Failed and skipped cells", cap, header, rows,
                 bad[cols].reset_index(drop=True), numeric_from=99)


def no_success_table(df: pd.DataFrame) -> Table | None:
    groups = D.no_success_groups(df)
    if groups.empty:
        return None
    rows = [[TableCell(r.dataset), TableCell(r.backbone), TableCell(r.strategy),
             TableCell(D.fraction_label(r.label_fraction)), TableCell(r.status)]
            for r in groups.sort_values(["dataset", "backbone", "strategy", "label_fraction"])
            .itertuples(index=False)]
    cap = ("Settings where every record failed or was skipped: they have no number in the "
           "tables or figures (shown as failed/skipped there).")
    return Table("no_success", "Settings without a successful record", cap,
                 ["Dataset", "Backbone", "Strategy", "Labels", "Records"], rows, groups,
                 numeric_from=99)


SECTIONS = [
    Section("no_success", "table", lambda inp: no_success_table(inp.frame), place="failures",
            order=10),
    Section("failures", "table", lambda inp: failures_table(inp.frame), place="failures",
            order=20),
]
