"""The report's table type and its renderers: Markdown, CSV and LaTeX (booktabs) files, HTML.

A :class:`Table` holds formatted cells (text plus bold / mark flags)
for Markdown, LaTeX and HTML, and a tidy frame of raw numbers for the CSV file. The tables
themselves are built by the report's sections (:mod:`tlbench.report.sections`).
"""
from __future__ import annotations

import html as _html
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tlbench._moved import REMOVED_IN

#: "cannot be told apart from the row's best at alpha after Holm" (tlbench.analysis.stats.compare_row)
MARK = "○"
#: "the row's verdict changes when the budget check re-runs it with more compute"
BUDGET_MARK = "‡"


@dataclass
class TableCell:
    """One formatted cell of a report table (``tlbench.Cell`` is the benchmark's cell)."""

    text: str
    bold: bool = False
    mark: str = ""          # a mark after the text (MARK, BUDGET_MARK), explained in the caption
    muted: bool = False     # failed / skipped / not run
    title: str = ""         # tooltip in the HTML page


def __getattr__(name: str):
    if name == "Cell":  # its name until 0.4: one name for two things
        warnings.warn("tlbench.report.tables.Cell is deprecated: use TableCell (tlbench.Cell is the benchmark's "
                      f"cell); Cell is removed in {REMOVED_IN}", DeprecationWarning, stacklevel=2)
        return TableCell
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class Table:
    name: str                       # file stem, also the HTML id
    title: str
    caption: str
    header: list[str]
    rows: list[list[TableCell]]
    data: pd.DataFrame              # raw numbers, written as CSV
    numeric_from: int = 1           # first right-aligned column
    key_cols: int = 0               # leading columns blanked in LaTeX when repeated
    breaks: list[int] = field(default_factory=list)  # rows preceded by a rule in LaTeX


# ---------------------------------------------------------------------------- formatting

def fmt_acc(mean: float, low: float = math.nan, high: float = math.nan) -> str:
    """A fraction as a percentage with its interval: ``76.7 [69.2, 83.3]`` (no interval: NaN)."""
    if math.isnan(low) or math.isnan(high):
        return f"{100 * mean:.1f}"
    return f"{100 * mean:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def fmt_score(value: float, label: str = "accuracy") -> str:
    """A task's score (a fraction) in a sentence: ``93.1%`` for accuracy, ``per-image AP 41.2``
    for another score (:mod:`tlbench.tasks`)."""
    return f"{100 * value:.1f}%" if label == "accuracy" else f"{label} {100 * value:.1f}"


def fmt_diff(iv) -> str:
    """A difference of fractions in points with its interval: ``−1.2 [−3.4, +0.9]``."""
    def pts(x: float) -> str:
        return f"{100 * x:+.1f}".replace("-", "−")
    return f"{pts(iv.estimate)} [{pts(iv.low)}, {pts(iv.high)}]"


def fmt_count(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    x = float(x)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.0f}"


def fmt_num(x: float, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


def dataset_label(name: str, shift: bool) -> str:
    return f"{name} (target)" if shift else name


# ---------------------------------------------------------------------------- renderers

def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(t: Table) -> str:
    def cell(c: TableCell) -> str:
        s = _md_escape(c.text)
        if c.bold:
            s = f"**{s}**"
        if c.mark:
            s += f" {_md_escape(c.mark)}"
        return s
    align = ["---" if i < t.numeric_from else "---:" for i in range(len(t.header))]
    lines = [f"**{t.title}.** {t.caption}", "",
             "| " + " | ".join(_md_escape(h) for h in t.header) + " |",
             "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
        "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}", "±": r"$\pm$", "○": r"$\circ$", "−": r"$-$", "×": r"$\times$",
        "→": r"$\to$", "…": r"\ldots{}", "α": r"$\alpha$", "–": "--", "“": "``", "”": "''",
        "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}


_TEX_MARKS = {MARK: r"\circ", BUDGET_MARK: r"\ddagger"}
_MARK_TITLES = {MARK: "cannot be told apart from the row's best (α = 0.05, after Holm)",
                BUDGET_MARK: "the verdict changes with more compute (budget check)"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(t: Table) -> str:
    spec = "".join("l" if i < t.numeric_from else "r" for i in range(len(t.header)))
    out = ["% Requires \\usepackage{booktabs} in the preamble.",
           "\\begin{table}[tbp]", "\\centering", "\\small",
           f"\\caption{{{tex_escape(t.title)}. {tex_escape(t.caption)}}}",
           f"\\label{{tab:{t.name}}}",
           f"\\begin{{tabular}}{{@{{}}{spec}@{{}}}}", "\\toprule",
           " & ".join(f"\\textbf{{{tex_escape(h)}}}" for h in t.header) + " \\\\", "\\midrule"]
    prev = None
    for i, row in enumerate(t.rows):
        if i in t.breaks:
            out.append("\\midrule")
            prev = None
        cells = []
        for j, c in enumerate(row):
            s = tex_escape(c.text)
            if j < t.key_cols and prev is not None and all(
                    row[k].text == prev[k].text for k in range(j + 1)):
                s = ""
            if c.bold:
                s = f"\\textbf{{{s}}}"
            if c.mark:
                s += f"$^{{{_TEX_MARKS.get(c.mark, tex_escape(c.mark))}}}$"
            cells.append(s)
        out.append(" & ".join(cells) + " \\\\")
        prev = row
    out += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(out) + "\n"


def to_html(t: Table) -> str:
    esc = _html.escape
    parts = [f'<table id="tab-{esc(t.name)}" class="data">',
             f"<caption><strong>{esc(t.title)}.</strong> {esc(t.caption)}</caption>",
             "<thead><tr>" + "".join(
                 f'<th class="{"num" if i >= t.numeric_from else "txt"}">{esc(h)}</th>'
                 for i, h in enumerate(t.header)) + "</tr></thead>", "<tbody>"]
    for i, row in enumerate(t.rows):
        cls = ' class="group"' if i in t.breaks else ""
        cells = []
        for j, c in enumerate(row):
            s = esc(c.text)
            if c.bold:
                s = f"<strong>{s}</strong>"
            if c.mark:
                s += f'<sup class="mark" title="{esc(_MARK_TITLES.get(c.mark, ""))}">{esc(c.mark)}</sup>'
            klass = ["num" if j >= t.numeric_from else "txt"] + (["muted"] if c.muted else [])
            title = f' title="{esc(c.title)}"' if c.title else ""
            cells.append(f'<td class="{" ".join(klass)}"{title}>{s}</td>')
        parts.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


def write_table(t: Table, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{t.name}.{ext}" for ext in ("md", "csv", "tex")]
    paths[0].write_text(to_markdown(t), encoding="utf-8")
    t.data.to_csv(paths[1], index=False)
    paths[2].write_text(to_latex(t), encoding="utf-8")
    return paths
