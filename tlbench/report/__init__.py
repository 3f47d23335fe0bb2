"""The report layer: stored records in, tables, figures and a self-contained HTML page out.

``write_report`` reads nothing but the frame of records it is given, so a report can be
re-made at any time without training. Layout under ``out_dir/report/``::

    report.html                         self-contained page (figures inlined)
    figures/fig*.{png,pdf,svg}          data efficiency, cost vs accuracy, overview, shift,
                                        transferability scores vs accuracy
    tables/*.{md,csv,tex}               accuracy, macro_f1, ranks, cost, domain_shift,
                                        transferability, selected_variants, failures, no_success
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from tlbench.errors import UserError
from tlbench.report import data as D
from tlbench.report import figures as F
from tlbench.report import tables as T
from tlbench.report import transfer as TR
from tlbench.report.data import apply_filters
from tlbench.report.html import render
from tlbench.report.style import order_strategies
from tlbench.selection import summarize

__all__ = ["write_report", "apply_filters"]

log = logging.getLogger("tlbench.report")

_OWNED = {"figures": tuple(F.FORMATS), "tables": ("md", "csv", "tex")}


def _clean(report_dir: Path) -> None:
    """Remove files an earlier report wrote, so a filtered re-run leaves nothing stale."""
    for sub, exts in _OWNED.items():
        d = report_dir / sub
        if d.is_dir():
            for p in d.iterdir():
                if p.is_file() and p.suffix.lstrip(".") in exts:
                    p.unlink()


def write_report(frame: pd.DataFrame, out_dir: Path, meta: dict,
                 filters: dict[str, list[str]] | None = None) -> Path:
    """Write figures, tables and ``report.html`` under ``out_dir/report/``; return the page.

    Raises :class:`UserError` (one line) when there is nothing to report: no records, a filter
    that matches nothing or names unknown datasets/backbones/strategies, or no successful
    record at all. Settings whose records all failed are logged as warnings on the
    ``tlbench.report`` logger and listed in the report.
    """
    out_dir = Path(out_dir)
    df = D.prepare(frame)
    df = apply_filters(df, filters)
    counts = df["status"].value_counts().to_dict()
    if not (df["status"] == "ok").any():
        first = D.error_summary(next((e for e in df["error"] if e.strip()), ""), 160)
        what = ", ".join(f"{n} {s}" for s, n in counts.items())
        raise UserError(f"nothing to report: all {len(df)} records in {out_dir} failed or were "
                        f"skipped ({what})" + (f"; first error: {first}" if first else ""))

    selected = D.select(df)
    summary = summarize(selected, "test_acc")
    roles = D.roles(df)  # strategy -> declared role: oracles are found by role, never by label
    strategies = order_strategies(df["strategy"].unique(), roles)
    shift = df.groupby("dataset")["has_target_domain"].any().to_dict()

    report_dir = out_dir / "report"
    fig_dir, tab_dir = report_dir / "figures", report_dir / "tables"
    report_dir.mkdir(parents=True, exist_ok=True)
    _clean(report_dir)

    tables: dict[str, T.Table | None] = {
        "accuracy": T.accuracy_table(df, selected, summary, strategies),
        "ranks": T.rank_table(summary, strategies, D.oracles(df)),
        "cost": T.cost_table(selected, strategies),
        "domain_shift": T.shift_table(df, selected, shift),
        "selected_variants": T.selection_table(df, selected, strategies),
        "failures": T.failures_table(df),
        "no_success": T.no_success_table(df),
    }
    if selected["test_macro_f1"].notna().any():
        f1 = summarize(selected.dropna(subset=["test_macro_f1"]), "test_macro_f1")
        tables["macro_f1"] = T.accuracy_table(df, selected, f1, strategies,
                                              metric="test_macro_f1", name="macro_f1",
                                              what="Test macro-F1 (%)")
    transfer = TR.transfer_section(df, summary, TR.stored_scores(out_dir, meta), fig_dir)
    tables["transferability"] = transfer.table
    for t in tables.values():
        if t is not None:
            T.write_table(t, tab_dir)

    figures, missing = [], []
    builders = [
        (lambda: F.data_efficiency(summary, strategies, shift, fig_dir, roles),
         "Figure data efficiency: no successful records."),
        (lambda: F.cost_accuracy(selected, strategies, shift, fig_dir),
         "No cost-versus-accuracy figure: no training time or parameter count recorded."),
        (lambda: F.overview_heatmap(summary, strategies, shift, fig_dir),
         "Figure overview: no successful records."),
        (lambda: F.domain_shift(selected, shift, fig_dir),
         "No domain-shift figure: no source→target dataset with results of an adaptation "
         "or oracle strategy (by declared role) in this report."),
    ]
    for build, why in builders:
        out = build()
        (figures.append(out) if out is not None else missing.append(why))

    if transfer.figure is not None:
        figures.append(transfer.figure)
    missing.extend(transfer.notes)

    notices = []
    groups = D.no_success_groups(df)
    if not groups.empty:
        listed = "; ".join(f"{r.dataset}/{r.backbone}/{r.strategy}@"
                           f"{D.fraction_label(r.label_fraction)} ({r.status})"
                           for r in groups.head(8).itertuples(index=False))
        more = f" and {len(groups) - 8} more" if len(groups) > 8 else ""
        msg = (f"{len(groups)} setting(s) have no successful record and are left out of every "
               f"mean: {listed}{more}. See Failed and skipped cells.")
        log.warning(msg)
        notices.append(msg)
    n_bad = int((df["status"] != "ok").sum())
    if n_bad and groups.empty:
        notices.append(f"{n_bad} record(s) failed or were skipped; their settings still have "
                       "successful seeds (seed counts below the suite's are marked n=…). "
                       "See Failed and skipped cells.")

    scope = {"datasets": sorted(df["dataset"].unique()),
             "backbones": sorted(df["backbone"].unique()),
             "strategies": strategies,
             "label fractions": [D.fraction_label(f)
                                 for f in sorted(df["label_fraction"].unique())],
             "seeds": sorted(int(s) for s in df["seed"].dropna().unique())}
    page = render(meta=meta or {}, counts=counts, scope=scope,
                  filters_text=D.describe_filters(filters), notices=notices, figures=figures,
                  missing_figures=missing, tables=tables,
                  selection_shown=bool((df.groupby(D.GROUP)["variant"].nunique() > 1).any()))
    path = report_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
