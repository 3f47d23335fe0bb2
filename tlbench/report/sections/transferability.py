"""Transferability: do the scores computed on frozen features before training order the
backbones as the measured accuracy does? A table and a figure (:mod:`tlbench.report.transfer`);
silent when no scores are stored."""
from __future__ import annotations

from tlbench.report import transfer as TR
from tlbench.report.sections import CLASSIFICATION_ONLY, ReportInput, Section


def _section(inp: ReportInput) -> TR.Section:
    return inp.once("transferability", lambda: TR.transfer_section(
        inp.frame, inp.summary, TR.stored_scores(inp.out_dir, inp.meta), inp.fig_dir))


def _note(inp: ReportInput) -> str | None:
    return " ".join(_section(inp).notes) or None


SECTIONS = [
    Section("transferability", "table", lambda inp: _section(inp).table, order=50, tasks=CLASSIFICATION_ONLY),
    Section("transferability_figure", "figure", lambda inp: _section(inp).figure,
            missing=_note, place="figures", order=50, tasks=CLASSIFICATION_ONLY),
]
