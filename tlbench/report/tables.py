"""The report's tables, each built once and written as Markdown, CSV and LaTeX (booktabs).

A :class:`Table` holds formatted cells (text plus bold / "not significantly worse" flags)
for Markdown, LaTeX and HTML, and a tidy frame of raw numbers for the CSV file.
"""
from __future__ import annotations

import html as _html
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tlbench.report import data as D
from tlbench.selection import select_variants, summarize

MARK = "†"


@dataclass
class Cell:
    text: str
    bold: bool = False
    mark: bool = False      # not significantly worse than the row's best
    muted: bool = False     # failed / skipped / not run
    title: str = ""         # tooltip in the HTML page


@dataclass
class Table:
    name: str                       # file stem, also the HTML id
    title: str
    caption: str
    header: list[str]
    rows: list[list[Cell]]
    data: pd.DataFrame              # raw numbers, written as CSV
    numeric_from: int = 1           # first right-aligned column
    key_cols: int = 0               # leading columns blanked in LaTeX when repeated
    breaks: list[int] = field(default_factory=list)  # rows preceded by a rule in LaTeX


# ---------------------------------------------------------------------------- formatting

def fmt_acc(mean: float, half: float) -> str:
    if math.isnan(half):
        return f"{100 * mean:.1f}"
    return f"{100 * mean:.1f} ± {100 * half:.1f}"


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


# ---------------------------------------------------------------------------- tables

def accuracy_table(df: pd.DataFrame, selected: pd.DataFrame, summary: pd.DataFrame,
                   strategies: list[str], metric: str = "test_acc",
                   name: str = "accuracy", what: str = "Test accuracy (%)") -> Table:
    """Rows: dataset × backbone × label fraction; columns: strategies."""
    expected_seeds = int(df["seed"].nunique())
    shift = df.groupby("dataset")["has_target_domain"].any().to_dict()
    keys = (df[["dataset", "backbone", "label_fraction"]].drop_duplicates()
            .sort_values(["dataset", "backbone", "label_fraction"]).itertuples(index=False))
    summ = {(r.dataset, r.backbone, r.label_fraction, r.strategy): r
            for r in summary.itertuples(index=False)}
    statuses = df.groupby(["dataset", "backbone", "label_fraction", "strategy"])["status"] \
        .agg(lambda s: sorted(set(s))).to_dict()
    per_seed = {k: g.set_index("seed")[metric] for k, g in
                selected.groupby(["dataset", "backbone", "label_fraction", "strategy"])}
    oracles = D.oracles(df)  # by declared role, never by label

    rows, records, breaks = [], [], []
    tested_any, untested_any, marked_any, prev = False, False, False, None
    for dataset, backbone, frac in keys:
        if prev is not None and prev != (dataset, backbone):
            breaks.append(len(rows))
        prev = (dataset, backbone)
        present = {s: summ[(dataset, backbone, frac, s)] for s in strategies
                   if (dataset, backbone, frac, s) in summ}
        rivals = {s: r for s, r in present.items() if s not in oracles}
        best_mean = max((r.mean for r in rivals.values()), default=math.nan)
        best = [s for s, r in rivals.items() if abs(r.mean - best_mean) <= 1e-12]
        ref = best[0] if best else None
        row = [Cell(dataset_label(dataset, shift.get(dataset, False))), Cell(backbone),
               Cell(D.fraction_label(frac))]
        for s in strategies:
            rec = {"dataset": dataset, "backbone": backbone, "label_fraction": frac,
                   "strategy": s}
            if s not in present:
                st = statuses.get((dataset, backbone, frac, s))
                if st is None:
                    row.append(Cell("–", muted=True, title="not run"))
                    continue
                word = st[0] if len(st) == 1 and st[0] in ("skipped", "diverged") else "failed"
                row.append(Cell(word, muted=True, title="no successful record: see "
                                "'Failed and skipped cells'"))
                records.append(rec | {"variant": "", "seeds": 0, "mean": math.nan,
                                      "std": math.nan, "ci_half": math.nan, "ci_low": math.nan,
                                      "ci_high": math.nan, "best": False,
                                      "not_significantly_worse": False, "p_value": math.nan,
                                      "paired_seeds": 0, "note": word})
                continue
            r = present[s]
            is_best = s in best
            p, n_pairs, mark = math.nan, 0, False
            if s not in oracles and not is_best and ref is not None:
                p, n_pairs = D.paired_worse_test(per_seed[(dataset, backbone, frac, ref)],
                                                 per_seed[(dataset, backbone, frac, s)])
                if n_pairs >= 2:
                    tested_any = True
                    mark = p >= D.ALPHA
                    marked_any |= mark
                else:
                    untested_any = True
            text = fmt_acc(r.mean, r.ci_half)
            if r.seeds < expected_seeds:
                text += f" (n={r.seeds})"
            tip = f"variant {r.variant}; {r.seeds} seed(s)"
            if not math.isnan(p):
                tip += f"; paired t-test vs {ref}: p = {p:.3g}"
            row.append(Cell(text, bold=is_best, mark=mark, title=tip))
            records.append(rec | {"variant": r.variant, "seeds": r.seeds, "mean": r.mean,
                                  "std": r.std, "ci_half": r.ci_half, "ci_low": r.ci_low,
                                  "ci_high": r.ci_high, "best": is_best,
                                  "not_significantly_worse": mark, "p_value": p,
                                  "paired_seeds": n_pairs,
                                  "note": "oracle" if s in oracles else ""})
        rows.append(row)

    seeds_txt = (f"n = {expected_seeds} seed{'s' if expected_seeds != 1 else ''}"
                 " unless noted")
    cap = [f"{what} of the hyper-parameter variant selected on validation accuracy: mean ± "
           f"half-width of the 95% Student-t confidence interval over seeds ({seeds_txt}; "
           "one seed: no interval). Bold: best mean in the row."]
    if tested_any:
        cap.append(f"{MARK}: not significantly worse than the best (one-sided paired t-test "
                   f"over seeds, α = {D.ALPHA:g})." +
                   (" Entries with fewer than 2 seeds paired with the best are not tested."
                    if untested_any else ""))
    else:
        cap.append("No significance marks: fewer than 2 seeds paired with the best, so the "
                   f"paired t-test (α = {D.ALPHA:g}) could not be run.")
    if any(shift.values()):
        cap.append("For domain-shift pairs (target) the accuracy is on the target domain; "
                   "transfer strategies there are source-only baselines.")
    shown_oracles = [s for s in strategies if s in oracles]
    if shown_oracles:
        cap.append(f"{', '.join(shown_oracles)} {'is' if len(shown_oracles) == 1 else 'are'} "
                   "trained on target labels (role oracle): an upper bound, left out of bold, "
                   "marks and ranks.")
    cap.append("“failed”/“skipped”: no successful record (see Failed and skipped cells); "
               "“–”: not run.")
    header = ["Dataset", "Backbone", "Labels"] + strategies
    return Table(name, f"{what}: mean ± 95% CI over seeds", " ".join(cap), header, rows,
                 pd.DataFrame(records), numeric_from=3, key_cols=2, breaks=breaks)


def rank_table(summary: pd.DataFrame, strategies: list[str],
               oracles: set[str] = frozenset()) -> Table | None:
    """Average rank (1 = best mean test accuracy) within each dataset × backbone × fraction;
    ``oracles`` (strategies whose role is oracle) are not ranked."""
    s = summary[~summary["strategy"].isin(oracles)].copy()
    block = ["dataset", "backbone", "label_fraction"]
    sizes = s.groupby(block)["strategy"].transform("count")
    s = s[sizes >= 2].copy()
    if s.empty:
        return None
    s["rank"] = s.groupby(block)["mean"].rank(ascending=False, method="average")
    order = [x for x in strategies if x in set(s["strategy"])]
    backbones = sorted(s["backbone"].unique())
    fracs = sorted(s["label_fraction"].unique())
    cols = [("all", None, None)]
    if len(backbones) > 1:
        cols += [(f"backbone={b}", "backbone", b) for b in backbones]
    if len(fracs) > 1:
        cols += [(f"labels={D.fraction_label(f)}", "label_fraction", f) for f in fracs]
    records = []
    for strat in order:
        g = s[s["strategy"] == strat]
        rec = {"strategy": strat, "blocks": len(g)}
        for label, col, val in cols:
            sub = g if col is None else g[g[col] == val]
            rec[f"mean_rank[{label}]"] = sub["rank"].mean() if len(sub) else math.nan
        records.append(rec)
    frame = pd.DataFrame(records).sort_values(["mean_rank[all]", "strategy"])
    best = {label: frame[f"mean_rank[{label}]"].min() for label, _, _ in cols}
    rows = []
    for rec in frame.to_dict("records"):
        row = [Cell(rec["strategy"])]
        for label, _, _ in cols:
            v = rec[f"mean_rank[{label}]"]
            row.append(Cell("–", muted=True) if math.isnan(v) else
                       Cell(f"{v:.2f}", bold=abs(v - best[label]) <= 1e-12))
        row.append(Cell(str(rec["blocks"])))
        rows.append(row)
    header = ["Strategy", "Mean rank"] + [lab.split("=", 1)[1] for lab, _, _ in cols[1:]] + \
        ["Blocks"]
    n_blocks = s.groupby(block).ngroups
    cap = (f"Average rank of each strategy by mean test accuracy (1 = best; ties share the "
           f"average rank), over {n_blocks} blocks (dataset × backbone × label fraction) with "
           "at least two strategies; a strategy is ranked only in the blocks where it ran "
           "(Blocks column). Columns after Mean rank restrict the average to one backbone or "
           "label fraction. Bold: best in the column.")
    unranked = [x for x in strategies if x in oracles]
    if unranked:
        cap += f" {', '.join(unranked)} (role oracle) {'is' if len(unranked) == 1 else 'are'} not ranked."
    return Table("ranks", "Average rank across datasets and label fractions", cap, header,
                 rows, frame.reset_index(drop=True), numeric_from=1)


def cost_table(selected: pd.DataFrame, strategies: list[str]) -> Table:
    """Per backbone × strategy: train time, throughput, peak memory, parameters."""
    has_flops = selected["forward_gflops"].notna().any()
    records = []
    for (backbone, strat), g in selected.groupby(["backbone", "strategy"]):
        trainable = g["trainable_params"].median()
        total = g["total_params"].median()
        records.append({
            "backbone": backbone, "strategy": strat, "cells": len(g),
            "train_seconds_mean": g["train_seconds"].mean(),
            "examples_per_second_mean": g["examples_per_second"].mean(),
            "peak_memory_mb_max": g["peak_memory_mb"].max(),
            "trainable_params_median": trainable,
            "total_params_median": total,
            "trainable_percent": 100 * trainable / total if total and total > 0 else math.nan,
            "forward_gflops_mean": g["forward_gflops"].mean(),
        })
    rank = {s: i for i, s in enumerate(strategies)}
    frame = pd.DataFrame(records)
    frame = frame.sort_values(["backbone", "strategy"], key=lambda c: c.map(rank)
                              if c.name == "strategy" else c).reset_index(drop=True)
    rows, breaks, prev = [], [], None
    for i, r in enumerate(frame.itertuples(index=False)):
        if prev is not None and r.backbone != prev:
            breaks.append(i)
        prev = r.backbone
        pct = r.trainable_percent
        pct_txt = "–" if math.isnan(pct) else (f"{pct:.2f}" if pct < 10 else f"{pct:.1f}")
        row = [Cell(r.backbone), Cell(r.strategy), Cell(fmt_num(r.train_seconds_mean, 1)),
               Cell(fmt_num(r.examples_per_second_mean, 0)), Cell(fmt_num(r.peak_memory_mb_max, 0)),
               Cell(fmt_count(r.trainable_params_median)), Cell(fmt_count(r.total_params_median)),
               Cell(pct_txt)]
        if has_flops:
            row.append(Cell(fmt_num(r.forward_gflops_mean, 2)))
        row.append(Cell(str(r.cells)))
        rows.append(row)
    header = ["Backbone", "Strategy", "Train time (s)", "Examples/s", "Peak memory (MB)",
              "Trainable params", "Total params", "Trainable (%)"]
    if has_flops:
        header.append("Forward GFLOPs")
    header.append("Cells")
    cap = ("Cost of the selected variants, over every successful cell (dataset, label fraction, "
           "seed) of each backbone and strategy: mean training time per cell, mean training "
           "throughput, largest peak memory, and median trainable and total parameters (the "
           "head grows with the number of classes).")
    return Table("cost", "Cost per strategy", cap, header, rows, frame, numeric_from=2,
                 key_cols=1, breaks=breaks)


def shift_table(df: pd.DataFrame, selected: pd.DataFrame, shift: dict[str, bool]) -> Table | None:
    """Per source→target pair, backbone, label fraction and adaptation strategy: target
    accuracy of source-only (a transfer strategy), the adaptation strategy and the oracle, all
    found by declared role (:func:`D.shift_picks`); the share of the source-only → oracle gap the
    adaptation closes; the adaptation with its variant chosen on target validation (an oracle
    choice, for reference); and the source-domain accuracy after training (forgetting). None
    without a shift pair that has an adaptation or oracle strategy."""
    picks = D.shift_picks(selected, shift)
    if not picks:
        return None
    sel = D.shift_rows(selected, picks)
    adapt_rows = df[df["role"] == "adaptation"]
    summaries = {"target": summarize(sel, "test_acc"),
                 "source": summarize(sel.dropna(subset=["source_test_acc"]), "source_test_acc"),
                 "adapt_oracle_choice": summarize(select_variants(adapt_rows, by="target_val_acc"))}
    by_key = {k: {(r.dataset, r.backbone, r.label_fraction, r.strategy): r
                  for r in v.itertuples(index=False)} for k, v in summaries.items()}
    rows, records = [], []
    for (dataset, backbone, frac), pick in sorted(picks.items()):
        for adapt in pick.adaptation or (None,):
            names = {"source_only": pick.source_only, "adaptation": adapt, "oracle": pick.oracle}
            target = {k: by_key["target"].get((dataset, backbone, frac, s)) for k, s in names.items()}
            source = {k: by_key["source"].get((dataset, backbone, frac, s)) for k, s in names.items()}
            chosen = by_key["adapt_oracle_choice"].get((dataset, backbone, frac, adapt))
            so, da, orc = (r.mean if r is not None else math.nan for r in target.values())
            gap = (da - so) / (orc - so) if orc - so > 0 else math.nan
            row = [Cell(dataset), Cell(backbone), Cell(D.fraction_label(frac))]
            row += [Cell(f"{fmt_acc(r.mean, r.ci_half)} ({names[k]})") if r is not None
                    else Cell("–", muted=True) for k, r in target.items()]
            row.append(Cell("–" if math.isnan(gap) else f"{100 * gap:.0f}%", bold=True))
            row.append(Cell(fmt_acc(chosen.mean, chosen.ci_half) if chosen is not None else "–",
                            title=f"variant {chosen.variant}" if chosen is not None else ""))
            row.append(Cell(" / ".join(f"{100 * r.mean:.1f}" if r is not None else "–"
                                       for r in source.values())))
            rows.append(row)
            record = {"dataset": dataset, "backbone": backbone, "label_fraction": frac,
                      **{f"{k}_strategy": s for k, s in names.items()},
                      "gap_closed": gap,
                      "adaptation_target_val_selected_mean":
                          chosen.mean if chosen is not None else math.nan}
            for k in names:
                for what, r in (("target", target[k]), ("source", source[k])):
                    record[f"{k}_{what}_mean"] = r.mean if r is not None else math.nan
                    record[f"{k}_{what}_ci_half"] = r.ci_half if r is not None else math.nan
            records.append(record)
    cap = ("Target-domain test accuracy (%) of source-only training, of each domain-adaptation "
           "strategy (role adaptation) and of the oracle trained on target labels (role oracle), "
           "strategy in brackets: mean ± 95% CI over seeds, variants chosen on source validation "
           f"(the oracle on target validation). {D.SHIFT_RULE} Gap closed = (adaptation − "
           "source-only) / (oracle − source-only). “Adaptation, target-val choice” picks the "
           "adaptation's variant with target labels: an oracle selection, for reference only. "
           "Source acc. after: source-domain test accuracy of the same three models (forgetting).")
    header = ["Pair", "Backbone", "Labels", "Source-only", "Adaptation", "Oracle", "Gap closed",
              "Adaptation, target-val choice (oracle)",
              "Source acc. after (SO / adapt. / oracle)"]
    return Table("domain_shift", "Domain shift: source-only vs adaptation vs oracle", cap,
                 header, rows, pd.DataFrame(records), numeric_from=3, key_cols=2)


def failures_table(df: pd.DataFrame) -> Table | None:
    bad = df[df["status"] != "ok"].sort_values(
        ["status", "dataset", "backbone", "strategy", "label_fraction", "seed", "variant"])
    if bad.empty:
        return None
    rows = [[Cell(r.status), Cell(r.dataset), Cell(r.backbone), Cell(r.strategy),
             Cell(D.fraction_label(r.label_fraction)), Cell(str(r.seed)), Cell(r.variant),
             Cell(D.error_summary(r.error) or "(no error message)", title=r.error[-2000:])]
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
    rows = [[Cell(r.dataset), Cell(r.backbone), Cell(r.strategy),
             Cell(D.fraction_label(r.label_fraction)), Cell(r.status)]
            for r in groups.sort_values(["dataset", "backbone", "strategy", "label_fraction"])
            .itertuples(index=False)]
    cap = ("Settings where every record failed or was skipped: they have no number in the "
           "tables or figures (shown as failed/skipped there).")
    return Table("no_success", "Settings without a successful record", cap,
                 ["Dataset", "Backbone", "Strategy", "Labels", "Records"], rows, groups,
                 numeric_from=99)


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


# ---------------------------------------------------------------------------- renderers

def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(t: Table) -> str:
    def cell(c: Cell) -> str:
        s = _md_escape(c.text)
        if c.bold:
            s = f"**{s}**"
        if c.mark:
            s += f" {MARK}"
        return s
    align = ["---" if i < t.numeric_from else "---:" for i in range(len(t.header))]
    lines = [f"**{t.title}.** {t.caption}", "",
             "| " + " | ".join(_md_escape(h) for h in t.header) + " |",
             "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
        "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}", "±": r"$\pm$", "†": r"$^{\dagger}$", "×": r"$\times$",
        "→": r"$\to$", "…": r"\ldots{}", "α": r"$\alpha$", "–": "--", "“": "``", "”": "''",
        "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}


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
                s += r"$^{\dagger}$"
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
                s += f'<sup class="mark" title="not significantly worse than the best">{MARK}</sup>'
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
