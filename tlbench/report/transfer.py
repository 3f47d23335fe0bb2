"""The report's transferability section: do the scores computed before fine-tuning
(``tlbench rank``) order the backbones the way the measured test accuracy does?

For each dataset × strategy and each scorer: Kendall's tau and weighted tau (scipy) between the
score and the mean test accuracy of the selected variant at the largest label fraction, across
backbones, with an exact one-sided permutation p-value (all n! orderings for n <= 8), as a table
(md/csv/tex) and a scatter figure (score vs accuracy, one panel per scorer, one row per dataset).

The scores come from the store's ``transferability`` meta entry, a list of
``{dataset, backbone, scorer, value[, higher_is_better]}`` written by ``tlbench rank``.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from tlbench.report.figures import FigureOut, figure_style, legend_below, new_figure, save_figure
from tlbench.report.style import PANEL_H, PANEL_W, backbone_markers, order_strategies, strategy_color
from tlbench.report.tables import Table, TableCell

META_KEY = "transferability"
EXACT_MAX_N = 8          # enumerate all n! orderings up to here (8! = 40,320)
MONTE_CARLO = 20_000     # random orderings beyond it (seeded)
RANKED_ROLES = ("transfer", "adaptation")   # baselines and oracles do not use the pretrained features


@dataclass
class Section:
    table: Table | None = None
    figure: FigureOut | None = None
    notes: list[str] = field(default_factory=list)   # why a part is missing (shown in the report)


# ---------------------------------------------------------------------------- statistics

def kendall_tau(x, y) -> float:
    """Kendall's tau-b (ties counted as scipy does); NaN when either side is constant."""
    if len(x) < 2 or np.ptp(np.asarray(x, float)) == 0 or np.ptp(np.asarray(y, float)) == 0:
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


def weighted_tau(x, y) -> float:
    """scipy's weighted tau (hyperbolic weights: agreement among the top backbones counts most)."""
    if len(x) < 2 or np.ptp(np.asarray(x, float)) == 0 or np.ptp(np.asarray(y, float)) == 0:
        return math.nan
    return float(stats.weightedtau(x, y).statistic)


def permutation_p_value(x, y, seed: int = 0) -> float:
    """One-sided p-value of Kendall's tau under "the score orders the backbones at random":
    the share of orderings of ``y`` (all n! for n <= 8, else ``MONTE_CARLO`` random ones) whose
    tau is at least the observed one."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    observed = kendall_tau(x, y)
    if math.isnan(observed):
        return math.nan
    n = len(y)
    if n <= EXACT_MAX_N:
        orderings = (y[list(p)] for p in itertools.permutations(range(n)))
        taus = np.array([kendall_tau(x, yy) for yy in orderings])
    else:
        rng = np.random.default_rng(seed)
        taus = np.array([kendall_tau(x, rng.permutation(y)) for _ in range(MONTE_CARLO)])
    return float(np.mean(taus >= observed - 1e-12))


def possible_taus(n: int) -> list[Fraction]:
    """The values Kendall's tau can take between two orderings of n items without ties."""
    pairs = n * (n - 1) // 2
    return [Fraction(pairs - 2 * d, pairs) for d in range(pairs + 1)] if pairs else []


def _fmt_fraction(f: Fraction) -> str:
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def coarseness_note(ns: list[int]) -> str:
    """What tau and its p-value can be with so few backbones, for the caption."""
    parts = []
    for n in sorted(set(ns)):
        if n < 2:
            continue
        if n <= 5:
            values = ", ".join(_fmt_fraction(t) for t in sorted(possible_taus(n)))
            taus = f"tau takes only the values {values}"
        else:
            taus = f"tau moves in steps of {_fmt_fraction(Fraction(2, n * (n - 1) // 2))}"
        smallest = 1 / math.factorial(n)
        verdict = ("no result can be significant at 5%" if smallest > 0.05 else
                   "only a perfect order is significant at 5%" if 2 / math.factorial(n) > 0.05 else "")
        parts.append(f"with {n} backbones {taus} and the smallest possible p-value is "
                     f"1/{math.factorial(n)} = {smallest:.3g}" + (f": {verdict}" if verdict else ""))
    return ("; ".join(parts) + ".") if parts else ""


# ---------------------------------------------------------------------------- inputs

def stored_scores(out_dir: Path, meta: dict | None) -> list[dict]:
    """The ``transferability`` entries: from ``meta`` if the caller put them there, else from the
    store in ``out_dir`` (``tlbench.sqlite``), else none."""
    if meta and meta.get(META_KEY) is not None:
        return list(meta[META_KEY])
    path = Path(out_dir) / "tlbench.sqlite"
    if not path.is_file():
        return []
    from tlbench.run.store import Store
    store = Store(Path(out_dir))
    try:
        return list(store.meta(META_KEY, []) or [])
    finally:
        store.close()


def accuracy_by_backbone(summary: pd.DataFrame, df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean test accuracy of the selected variant per dataset × strategy × backbone, at the largest
    label fraction of each dataset × strategy; strategies whose declared role is a baseline or an
    oracle are left out (they do not transfer the pretrained features)."""
    s = summary.dropna(subset=["mean"])
    if df is not None and "role" in df.columns:
        roles = df.dropna(subset=["role"]).groupby("strategy")["role"].first()
        s = s[s["strategy"].map(roles).fillna("transfer").isin(RANKED_ROLES)]
    if s.empty:
        return s.assign(accuracy=[])[["dataset", "strategy", "backbone", "label_fraction", "accuracy"]]
    top = s.groupby(["dataset", "strategy"])["label_fraction"].transform("max")
    s = s[s["label_fraction"] == top]
    return (s.rename(columns={"mean": "accuracy"})
            [["dataset", "strategy", "backbone", "label_fraction", "accuracy"]].reset_index(drop=True))


def scores_frame(entries: list[dict]) -> pd.DataFrame:
    cols = ["dataset", "backbone", "scorer", "value", "higher_is_better"]
    frame = pd.DataFrame([{**{"higher_is_better": True}, **e} for e in entries or []], columns=cols)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    frame["higher_is_better"] = frame["higher_is_better"].fillna(True).astype(bool)
    return frame.dropna(subset=["value"])


def correlations(accuracy: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset × strategy × scorer with at least 2 backbones having both numbers."""
    merged = accuracy.merge(scores, on=["dataset", "backbone"])
    rows = []
    for (dataset, strategy, scorer), g in merged.groupby(["dataset", "strategy", "scorer"], sort=False):
        g = g.sort_values("backbone")
        if len(g) < 2:
            continue
        sign = 1.0 if g["higher_is_better"].iloc[0] else -1.0
        x, y = sign * g["value"].to_numpy(), g["accuracy"].to_numpy()
        pick = g["backbone"].iloc[int(np.argmax(x))]
        best = g["backbone"].iloc[int(np.argmax(y))]
        rows.append({"dataset": dataset, "strategy": strategy, "scorer": scorer, "n": len(g),
                     "label_fraction": float(g["label_fraction"].iloc[0]),
                     "kendall_tau": kendall_tau(x, y), "weighted_tau": weighted_tau(x, y),
                     "p_value": permutation_p_value(x, y), "score_pick": pick, "best_measured": best,
                     "pick_accuracy": float(g.loc[g["backbone"] == pick, "accuracy"].iloc[0]),
                     "best_accuracy": float(g["accuracy"].max())})
    return pd.DataFrame(rows, columns=["dataset", "strategy", "scorer", "n", "label_fraction", "kendall_tau",
                                       "weighted_tau", "p_value", "score_pick", "best_measured",
                                       "pick_accuracy", "best_accuracy"])


# ---------------------------------------------------------------------------- table and figure

def _fmt(v: float, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.{digits}f}"


def transfer_table(corr: pd.DataFrame, strategies: list[str]) -> Table:
    order = {s: i for i, s in enumerate(strategies)}
    corr = corr.assign(_o=corr["strategy"].map(order).fillna(len(order))) \
        .sort_values(["dataset", "_o", "scorer"]).drop(columns="_o").reset_index(drop=True)
    rows, breaks, previous = [], [], None
    for i, r in enumerate(corr.to_dict("records")):
        if previous is not None and (r["dataset"], r["strategy"]) != previous:
            breaks.append(i)
        previous = (r["dataset"], r["strategy"])
        hit = r["score_pick"] == r["best_measured"]
        p = r["p_value"]
        rows.append([TableCell(r["dataset"]), TableCell(r["strategy"]), TableCell(r["scorer"]), TableCell(str(r["n"])),
                     TableCell(_fmt(r["kendall_tau"]), bold=r["kendall_tau"] == 1.0),
                     TableCell(_fmt(r["weighted_tau"])),
                     TableCell("–" if math.isnan(p) else f"{p:.3g}", bold=not math.isnan(p) and p <= 0.05),
                     TableCell(r["score_pick"], bold=hit,
                          title="the backbone the score ranks first" + (" = the best measured" if hit else "")),
                     TableCell(f"{100 * (r['best_accuracy'] - r['pick_accuracy']):.1f}")])
    header = ["Dataset", "Strategy", "Scorer", "n", "Kendall tau", "Weighted tau", "p (exact)",
              "Score's pick", "Regret (pts)"]
    ns = sorted(set(int(n) for n in corr["n"]))
    cap = ("Do the transferability scores, computed on frozen features before any training "
           "(tlbench rank), order the backbones as the measured test accuracy does? Per dataset and "
           "strategy: Kendall's tau-b and weighted tau (hyperbolic weights, the top backbones count "
           "most) between each score and the mean test accuracy over seeds of the variant chosen on "
           "validation, at the largest label fraction, across n backbones (+1: same order, -1: "
           "reversed). p: one-sided exact permutation p-value of tau (the share of all n! orderings "
           "of the backbones with a tau at least as large; above 8 backbones, 20,000 random ones). "
           "Score's pick: the backbone the score ranks first (bold: it is the best measured one); "
           "regret: the accuracy points lost by taking it. Bold tau: a perfect order; bold p: <= 0.05. "
           "With so few backbones tau is coarse: " + coarseness_note(ns) + " Strategies declared "
           "as baselines or oracles (role) are not compared.")
    return Table("transferability", "Transferability scores against measured accuracy", cap, header, rows,
                 corr, numeric_from=3, key_cols=2, breaks=breaks)


def scatter_figure(accuracy: pd.DataFrame, scores: pd.DataFrame, strategies: list[str],
                   directory: Path) -> FigureOut | None:
    merged = accuracy.merge(scores, on=["dataset", "backbone"])
    if merged.empty:
        return None
    datasets = sorted(merged["dataset"].unique())
    scorers = list(dict.fromkeys(scores["scorer"]))
    scorers = [s for s in scorers if s in set(merged["scorer"])]
    present = [s for s in strategies if s in set(merged["strategy"])]
    markers = backbone_markers(sorted(merged["backbone"].unique()))
    with figure_style():
        fig = new_figure(PANEL_W * len(scorers) + 0.3, PANEL_H * len(datasets) + 0.7)
        axes = fig.subplots(len(datasets), len(scorers), squeeze=False)
        for r, dataset in enumerate(datasets):
            for c, scorer in enumerate(scorers):
                ax = axes[r, c]
                sub = merged[(merged["dataset"] == dataset) & (merged["scorer"] == scorer)]
                for strategy in present:
                    g = sub[sub["strategy"] == strategy].sort_values("value")
                    if g.empty:
                        continue
                    color = strategy_color(strategy)
                    ax.plot(g["value"], 100 * g["accuracy"], color=color, lw=0.7, alpha=0.5, zorder=2)
                    for row in g.itertuples(index=False):
                        ax.scatter(row.value, 100 * row.accuracy, color=color, marker=markers[row.backbone],
                                   s=22, edgecolor="white", linewidth=0.4, zorder=3)
                if sub.empty:
                    ax.text(0.5, 0.5, "no score", transform=ax.transAxes, ha="center", va="center",
                            color="#888888")
                higher = bool(sub["higher_is_better"].iloc[0]) if not sub.empty else True
                ax.set_xlabel(f"{scorer} (higher is better)" if higher else f"{scorer} (lower is better, reversed)")
                if not higher:   # better to the right on every panel
                    ax.invert_xaxis()
                ax.set_ylabel(f"{dataset}\nTest accuracy (%)" if c == 0 else "")
                if r == 0:
                    ax.set_title(scorer)
        from matplotlib.lines import Line2D
        handles = [Line2D([], [], color=strategy_color(s), marker="o", lw=0.7, label=s) for s in present]
        handles += [Line2D([], [], color="#444444", marker=m, lw=0, label=b) for b, m in markers.items()]
        legend_below(fig, handles, ncol_max=5)
        png = save_figure(fig, directory, "fig5_transferability")
    cap = ("Transferability score (x, computed on frozen features of the training split before any "
           "training) against measured test accuracy (y, mean over seeds of the variant chosen on "
           "validation, largest label fraction), one panel per scorer and one row per dataset; colour: "
           "strategy, marker: backbone. A useful score puts the backbones in the same order on both "
           "axes (lines rising to the right); the table gives Kendall's tau and its exact p-value, "
           "which with few backbones are coarse.")
    return FigureOut("fig5_transferability", "Transferability scores vs accuracy", cap, png)


def transfer_section(df: pd.DataFrame, summary: pd.DataFrame, entries: list[dict],
                     fig_dir: Path) -> Section:
    """The table and the figure, or a Section with only notes when there is nothing to compare:
    no stored scores (no note: ``tlbench rank`` was not run) or fewer than 2 backbones with both a
    score and an accuracy on some dataset."""
    scores = scores_frame(entries)
    if scores.empty:
        return Section()
    accuracy = accuracy_by_backbone(summary, df)
    corr = correlations(accuracy, scores)
    if corr.empty:
        return Section(notes=["No transferability section: scores are stored, but no dataset has two "
                              "backbones with both a score and a measured accuracy."])
    strategies = order_strategies(accuracy["strategy"].unique())
    keep = corr[["dataset", "strategy"]].drop_duplicates()
    accuracy = accuracy.merge(keep, on=["dataset", "strategy"])
    return Section(transfer_table(corr, strategies), scatter_figure(accuracy, scores, strategies, fig_dir))
