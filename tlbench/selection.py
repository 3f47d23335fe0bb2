"""Hyper-parameter selection on the validation split, and the per-seed summary built on it.

A suite's lists of strategy or training options expand into *variants* of one strategy. For each
(backbone, dataset, strategy, label fraction) the variant with the best mean validation
accuracy over seeds is selected; its test numbers are reported. Test accuracy never takes part.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

GROUP = ["backbone", "dataset", "strategy", "label_fraction"]
CONFIDENCE = 0.95


def select_variants(frame: pd.DataFrame, by: str = "val_acc") -> pd.DataFrame:
    """The rows (every seed) of the selected variant of each group; only ``ok`` rows.

    ``by="target_val_acc"`` gives the oracle choice for domain shifts (it uses target labels).
    """
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return ok
    score = ok.groupby(GROUP + ["variant"], dropna=False)[by].mean().reset_index()
    score = score.sort_values(GROUP + [by, "variant"], ascending=[True] * len(GROUP) + [False, True])
    best = score.drop_duplicates(GROUP)[GROUP + ["variant"]]
    return ok.merge(best, on=GROUP + ["variant"])


def mean_ci(values) -> tuple[float, float, int]:
    """Mean, half-width of the two-sided 95% Student-t interval, and count (NaNs dropped).

    One value: the half-width is NaN (no interval from one seed).
    """
    x = np.asarray(pd.Series(values, dtype=float).dropna(), dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, n
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n))
    return mean, half, n


def summarize(selected: pd.DataFrame, metric: str = "test_acc") -> pd.DataFrame:
    """Per group (backbone, dataset, strategy, label fraction) of the selected variant:
    mean, std, 95% CI and seed count of ``metric``."""
    cols = GROUP + ["variant", "has_target_domain", "seeds", "mean", "std", "ci_half",
                    "ci_low", "ci_high"]
    rows = []
    for key, g in selected.groupby(GROUP + ["variant"], dropna=False, sort=True):
        mean, half, n = mean_ci(g[metric])
        if n == 0:
            continue
        sd = float(g[metric].std(ddof=1)) if n > 1 else math.nan
        lo, hi = (mean - half, mean + half) if n > 1 else (math.nan, math.nan)
        rows.append(list(key) + [bool(g["has_target_domain"].iloc[0]), n, mean, sd, half, lo,
                                 hi])
    return pd.DataFrame(rows, columns=cols)
