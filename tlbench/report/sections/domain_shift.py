"""Domain shift: per source→target pair, source-only vs adaptation vs oracle, as a table (with
the share of the gap closed and forgetting) and a bar figure; strategies found by declared role
(:func:`tlbench.report.data.shift_picks`)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from tlbench.report import data as D
from tlbench.report.figures import (FigureOut, figure_style, legend_below, new_figure,
                                    save_figure)
from tlbench.report.sections import CLASSIFICATION_ONLY, Section
from tlbench.report.style import ORACLE, PANEL_H, strategy_color
from tlbench.report.tables import Table, TableCell, fmt_acc
from tlbench.analysis.selection import select_variants, summarize_seeds

# ---------------------------------------------------------------------------- table

TABLE_CAPTION = (
    "Target-domain test accuracy (%) of source-only training, of each domain-adaptation "
    "strategy (role adaptation) and of the oracle trained on target labels (role oracle), "
    "strategy in brackets: mean [95% interval counting the seeds' spread and the test set's "
    "(docs: Statistics); over seeds only without per-example evidence], variants chosen on "
    "source validation by each seed "
    f"(the oracle on target validation). {D.SHIFT_RULE} Gap closed = (adaptation − "
    "source-only) / (oracle − source-only); adversary = adaptation − control (the "
    "adaptation's own recipe without the adversary), where a control ran. “Adaptation, "
    "target-val choice” picks the "
    "adaptation's variant with target labels: an oracle selection, for reference only. "
    "Source acc. after: source-domain test accuracy of the same models (forgetting).")


def shift_table(df: pd.DataFrame, selected: pd.DataFrame, shift: dict[str, bool],
                evidence=None) -> Table | None:
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
    summaries = {"target": summarize_seeds(sel, "test_acc", evidence),
                 "source": summarize_seeds(sel.dropna(subset=["source_test_acc"]), "source_test_acc"),
                 "adapt_oracle_choice": summarize_seeds(select_variants(adapt_rows, by="target_val_acc"),
                                                  "test_acc", evidence)}
    by_key = {k: {(r.dataset, r.backbone, r.label_fraction, r.strategy): r
                  for r in v.itertuples(index=False)} for k, v in summaries.items()}
    rows, records = [], []
    for (dataset, backbone, frac), pick in sorted(picks.items()):
        for adapt in pick.adaptation or (None,):
            row, record = _shift_row(by_key, (dataset, backbone, frac), pick, adapt)
            rows.append(row)
            records.append(record)
    header = ["Pair", "Backbone", "Labels", "Source-only", "Adaptation", "Oracle", "Control",
              "Gap closed", "Adversary (points)", "Adaptation, target-val choice (oracle)",
              "Source acc. after (SO / adapt. / oracle / control)"]
    return Table("domain_shift", "Domain shift: source-only vs adaptation vs oracle",
                 TABLE_CAPTION, header, rows, pd.DataFrame(records), numeric_from=3, key_cols=2)


def _shift_row(by_key: dict, block: tuple, pick: D.ShiftPick, adapt: str | None):
    names = {"source_only": pick.source_only, "adaptation": adapt, "oracle": pick.oracle,
             "control": pick.control}
    target = {k: by_key["target"].get((*block, s)) for k, s in names.items()}
    source = {k: by_key["source"].get((*block, s)) for k, s in names.items()}
    chosen = by_key["adapt_oracle_choice"].get((*block, adapt))
    so, da, orc, ctl = (r.mean if r is not None else math.nan for r in target.values())
    gap = (da - so) / (orc - so) if orc - so > 0 else math.nan
    adversary = da - ctl
    row = [TableCell(block[0]), TableCell(block[1]), TableCell(D.fraction_label(block[2]))]
    row += [TableCell(f"{fmt_acc(r.mean, r.ci_low, r.ci_high)} ({names[k]})") if r is not None
            else TableCell("–", muted=True) for k, r in target.items()]
    row.append(TableCell("–" if math.isnan(gap) else f"{100 * gap:.0f}%", bold=True))
    row.append(TableCell("–" if math.isnan(adversary) else f"{100 * adversary:+.1f}"))
    row.append(TableCell(fmt_acc(chosen.mean, chosen.ci_low, chosen.ci_high) if chosen is not None
                    else "–",
                    title=f"variant {chosen.variant}" if chosen is not None else ""))
    row.append(TableCell(" / ".join(f"{100 * r.mean:.1f}" if r is not None else "–"
                               for r in source.values())))
    record = {"dataset": block[0], "backbone": block[1], "label_fraction": block[2],
              **{f"{k}_strategy": s for k, s in names.items()},
              "gap_closed": gap, "adversary_effect": adversary,
              "adaptation_target_val_selected_mean":
                  chosen.mean if chosen is not None else math.nan}
    for k in names:
        for what, r in (("target", target[k]), ("source", source[k])):
            record[f"{k}_{what}_mean"] = r.mean if r is not None else math.nan
            record[f"{k}_{what}_ci_low"] = r.ci_low if r is not None else math.nan
            record[f"{k}_{what}_ci_high"] = r.ci_high if r is not None else math.nan
    return row, record


# ---------------------------------------------------------------------------- figure

METRICS = [("test_acc", "Target domain"), ("source_test_acc", "Source domain (forgetting)")]


def _slot_strategy(picks: dict, slot: str, block: tuple) -> str | None:
    """The strategy in a bar slot ("source-only", an adaptation strategy, "oracle") of a block."""
    pick = picks.get(block)
    if pick is None:
        return None
    if slot == "source-only":
        return pick.source_only
    if slot == "oracle":
        return pick.oracle
    return slot if slot in pick.adaptation else None


def _intervals(sel: pd.DataFrame, evidence) -> dict[tuple, tuple[float, float]]:
    """The table's 95% intervals (in points) of every bar: (metric, dataset, backbone, strategy)
    -> (low, high), from :func:`summarize_seeds` over the same rows as the table (its seed terms
    floored by the same rows' pools), with the per-example evidence for target accuracy."""
    out = {}
    for metric, _ in METRICS:
        table = summarize_seeds(sel.dropna(subset=[metric]), metric,
                          evidence if metric == "test_acc" else None)
        for r in table.itertuples(index=False):
            out[(metric, r.dataset, r.backbone, r.strategy)] = (100 * r.ci_low, 100 * r.ci_high)
    return out


def _bar(ax, x: float, width: float, vals: pd.Series, s: str, role: str | None,
         interval: tuple[float, float]) -> None:
    """One bar: the mean over seeds, its 95% interval (the table's), the seeds as dots and the
    mean as text."""
    mean = float(vals.mean())
    ax.bar(x, mean, width * 0.9, color=strategy_color(s), zorder=2,
           hatch="////" if role == ORACLE else None, edgecolor="white", lw=0.3)
    top_y = mean
    low, high = interval
    if not math.isnan(low):
        ax.errorbar(x, mean, yerr=[[max(mean - low, 0)], [max(high - mean, 0)]],
                    color="#222222", lw=0.8, capsize=1.8, zorder=4)
        top_y = high
    jitter = np.linspace(-width * 0.2, width * 0.2, len(vals))
    ax.scatter(x + jitter, vals, s=5, color="white", edgecolor="#222222", linewidth=0.45,
               zorder=5)
    ax.annotate(f"{mean:.1f}", (x, max(top_y, vals.max())), xytext=(0, 1.5),
                textcoords="offset points", ha="center", va="bottom", fontsize=5.5,
                color="#222222", zorder=6)


def _axes_style(ax, backbones: list[str], dataset: str, first_col: bool) -> None:
    ax.set_xticks(range(len(backbones)), backbones)
    ax.set_xlim(-0.55, len(backbones) - 0.45)
    ax.set_ylim(0, 108)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel(f"{dataset}\nAccuracy (%)" if first_col else "")
    if len(backbones) > 2:
        ax.tick_params(axis="x", rotation=20)


def domain_shift(selected: pd.DataFrame, shift: dict[str, bool],
                 directory: Path, evidence=None) -> FigureOut | None:
    """Source-only vs adaptation vs oracle bars, the strategies found by declared role
    (:func:`D.shift_picks`)."""
    picks = D.shift_picks(selected, shift)
    sel = D.shift_rows(selected, picks)
    if sel.empty:
        return None
    sel = sel[sel["label_fraction"] == sel.groupby("dataset")["label_fraction"].transform("max")]
    intervals = _intervals(sel, evidence)
    datasets = sorted(sel["dataset"].unique())
    backbones = sorted(sel["backbone"].unique())
    roles = D.roles(sel)
    # one bar slot per role: source-only (a transfer strategy), each adaptation, the oracle
    slots = ["source-only"] + sorted(s for s, r in roles.items() if r == "adaptation") + ["oracle"]
    blocks = list(sel[["dataset", "backbone", "label_fraction"]].drop_duplicates()
                  .itertuples(index=False, name=None))
    present = [sl for sl in slots if any(_slot_strategy(picks, sl, k) for k in blocks)]
    drawn = {}  # strategy -> (slot, role), for the legend
    width = 0.8 / len(present)
    panel_w = max(0.75 + 0.36 * len(backbones) * len(present), 2.2)
    with figure_style():
        fig = new_figure(panel_w * 2 + 0.3, PANEL_H * len(datasets) + 0.55)
        axes = fig.subplots(len(datasets), 2, squeeze=False, sharey=True)
        for r, dataset in enumerate(datasets):
            sub = sel[sel["dataset"] == dataset]
            frac = sub["label_fraction"].iloc[0]
            for c, (metric, title) in enumerate(METRICS):
                ax = axes[r, c]
                ax.grid(axis="x", visible=False)
                for j, slot in enumerate(present):
                    for i, b in enumerate(backbones):
                        s = _slot_strategy(picks, slot, (dataset, b, frac))
                        vals = sub[(sub["strategy"] == s) & (sub["backbone"] == b)][metric] \
                            .dropna() * 100
                        if vals.empty:
                            continue
                        drawn.setdefault(s, (slot, roles.get(s)))
                        _bar(ax, i + (j - (len(present) - 1) / 2) * width, width, vals, s,
                             roles.get(s), intervals[(metric, dataset, b, s)])
                if sub[metric].isna().all():
                    ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center",
                            va="center", color="#888888")
                _axes_style(ax, backbones, dataset, c == 0)
                if r == 0:
                    ax.set_title(title)
        fracs = sel.groupby("dataset")["label_fraction"].first()
        if fracs.nunique() == 1:
            fig.suptitle(f"Domain shift at {D.fraction_label(fracs.iloc[0])} of the labels",
                         fontsize=8.5)
        order = {sl: i for i, sl in enumerate(slots)}
        handles = [Patch(facecolor=strategy_color(s), hatch="////" if role == ORACLE else None,
                         edgecolor="white",
                         label=s if slot not in ("source-only", "oracle") else f"{s} ({slot})")
                   for s, (slot, role) in sorted(drawn.items(),
                                                 key=lambda kv: (order[kv[1][0]], kv[0]))]
        legend_below(fig, handles, ncol_max=3)
        png = save_figure(fig, directory, "fig4_domain_shift")
    cap = ("Domain shift, per source→target pair (rows) at its largest label fraction. Left: "
           "accuracy on the target domain of the source-only baseline (a transfer strategy "
           "trained on source labels), of each adaptation strategy (source labels + unlabelled "
           "target) and of the oracle trained on target labels (hatched). "
           f"{D.SHIFT_RULE} Right: source-domain test accuracy of the same models: adaptation "
           "below source-only means adaptation cost source accuracy (forgetting). Bars and "
           "numbers: mean over seeds; whiskers: the table's 95% interval (target: seeds and test "
           "examples; source: seeds); dots: seeds.")
    return FigureOut("fig4_domain_shift", "Domain shift", cap, png)


SECTIONS = [
    Section("domain_shift", "table",
            lambda inp: shift_table(inp.frame, inp.selected, inp.shift, inp.evidence),
            order=20, tasks=CLASSIFICATION_ONLY),
    Section("domain_shift_figure", "figure",
            lambda inp: domain_shift(inp.selected, inp.shift, inp.fig_dir, inp.evidence),
            missing="No domain-shift figure: no source→target dataset with results of an "
                    "adaptation or oracle strategy (by declared role) in this report.",
            place="figures", order=40, tasks=CLASSIFICATION_ONLY),
]
