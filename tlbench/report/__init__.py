"""The report layer: stored records in, tables, figures and a self-contained HTML page out.

``write_report`` reads nothing but the frame of records (and the per-example evidence) it is
given, so a report can be re-made at any time without training. Every table and figure is a
section (:mod:`tlbench.report.sections`, one module each). Layout under ``out_dir/report/``::

    report.html                         self-contained page (figures inlined)
    figures/<figure>.{png,pdf,svg}      one per figure section that has something to show
    tables/<table>.{md,csv,tex}         one per table section that has something to show
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import pandas as pd

from tlbench.contract.errors import UserError
from tlbench.report import data as D
from tlbench.report import figures as F
from tlbench.report import tables as T
from tlbench.report.data import apply_filters
from tlbench.report.html import render
from tlbench.report.sections import ReportInput, ReportOptions, build_sections
from tlbench.report.style import order_strategies
from tlbench.analysis.selection import summarize_seeds
from tlbench.tasks import task as tasks

if TYPE_CHECKING:
    from tlbench.contract.evidence import SplitEvidence

__all__ = ["write_report", "apply_filters", "report_input", "ReportOptions"]

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
                 filters: dict[str, list[str]] | None = None,
                 evidence: Mapping[str, Mapping[str, "SplitEvidence"]] | None = None,
                 val_curves: Mapping[str, Sequence[Mapping[str, float]]] | None = None,
                 options: ReportOptions | None = None) -> Path:
    """Write figures, tables and ``report.html`` under ``out_dir/report/``; return the page.

    ``evidence``: the per-example evidence of the cells (``cell_id -> split -> SplitEvidence``,
    :meth:`tlbench.run.store.Store.evidence`); None or empty: the sections that use it fall back to
    the per-seed numbers. ``val_curves``: each cell's validation curve during training
    (``cell_id -> CellRecord.val_curve``), for the compute-to-accuracy table. ``options``: the
    reader's choices (:class:`ReportOptions`).

    Raises :class:`UserError` (one line) when there is nothing to report: no records, a filter
    that matches nothing or names unknown datasets/backbones/strategies, or no successful
    record at all. Settings whose records all failed are logged as warnings on the
    ``tlbench.report`` logger and listed in the report.
    """
    out_dir = Path(out_dir)
    df = apply_filters(D.prepare(frame), filters)
    counts = df["status"].value_counts().to_dict()
    if not (df["status"] == "ok").any():
        first = D.error_summary(next((e for e in df["error"] if e.strip()), ""), 160)
        what = ", ".join(f"{n} {s}" for s, n in counts.items())
        raise UserError(f"nothing to report: all {len(df)} records in {out_dir} failed or were "
                        f"skipped ({what})" + (f"; first error: {first}" if first else ""))

    pages = report_dirs(df, out_dir)
    for task, report_dir in pages.items():
        rows = df[df["task"] == task]
        inp = report_input(rows, out_dir, meta, evidence, val_curves, options, task=task, report_dir=report_dir)
        report_dir.mkdir(parents=True, exist_ok=True)
        _clean(report_dir)
        built = build_sections(inp)
        for b in built:
            if isinstance(b.output, T.Table):
                T.write_table(b.output, inp.tab_dir)
        others = [f"The {other} records have their own report: {other}/report.html."
                  for other in pages if other != task and report_dir == out_dir / "report"]
        page = render(meta=meta or {}, counts=rows["status"].value_counts().to_dict(),
                      scope=_scope(rows, inp.strategies), filters_text=D.describe_filters(filters),
                      notices=_notices(rows) + others, sections=built)
        (report_dir / "report.html").write_text(page, encoding="utf-8")
    return next(iter(pages.values())) / "report.html"


def report_dirs(df: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """The folder of each task's report: ``out_dir/report`` for the first (classification first,
    then by name; the only one, in a suite of one task), ``out_dir/report/<task>`` for the others."""
    return {task: out_dir / "report" / ("" if i == 0 else task) for i, task in enumerate(tasks.in_order(df["task"]))}


def report_input(df: pd.DataFrame, out_dir: Path, meta: dict | None = None, evidence=None,
                 val_curves=None, options: ReportOptions | None = None, task: str = "classification",
                 report_dir: Path | None = None) -> ReportInput:
    """What every section is built from (see :func:`write_report` for the arguments); ``df``
    is a prepared frame (:func:`tlbench.report.data.prepare`) of one ``task``'s records, whose
    report goes to ``report_dir`` (default ``out_dir/report``)."""
    score = tasks.get(task)
    options = options or ReportOptions()
    if options.baseline is not None and options.baseline not in set(df["strategy"]):
        raise UserError(f"--baseline {options.baseline!r} is not a strategy of these records; "
                        f"strategies: {', '.join(sorted(df['strategy'].unique()))}")
    check, df = df, D.at_budget(df)
    selected = D.select(df, f"val_{score.score}")
    roles = D.roles(df)  # strategy -> declared role: oracles are found by role, never by label
    report_dir = report_dir or out_dir / "report"
    return ReportInput(
        frame=df, check=check[check["budget"] != 1.0],
        selected=selected, summary=summarize_seeds(selected, f"test_{score.score}", evidence),
        roles=roles,
        strategies=order_strategies(df["strategy"].unique(), roles),
        shift=df.groupby("dataset")["has_target_domain"].any().to_dict(),
        evidence=evidence or {}, val_curves=val_curves or {}, out_dir=out_dir,
        fig_dir=report_dir / "figures", tab_dir=report_dir / "tables", meta=meta or {},
        options=options, task=task, score=score.score, score_label=score.score_label)


def _notices(df: pd.DataFrame) -> list[str]:
    """The warnings at the top of the page: settings without a successful record (also logged),
    or records that failed in settings that still have successful seeds."""
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
    return notices


def _scope(df: pd.DataFrame, strategies: list[str]) -> dict[str, list]:
    return {"datasets": sorted(df["dataset"].unique()),
            "backbones": sorted(df["backbone"].unique()),
            "strategies": strategies,
            "label fractions": [D.fraction_label(f)
                                for f in sorted(df["label_fraction"].unique())],
            "seeds": sorted(int(s) for s in df["seed"].dropna().unique())}
