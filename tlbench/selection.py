"""Hyper-parameter selection on the validation split, and the per-seed summary built on it.

A suite's lists of strategy or training options expand into *variants* of one strategy. For each
(backbone, dataset, strategy, label fraction) the variant with the best mean validation
accuracy over seeds is selected; its test numbers are reported. Test accuracy never takes part.
"""
from __future__ import annotations

import pandas as pd

GROUP = ["backbone", "dataset", "strategy", "label_fraction"]


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


def summarize(frame: pd.DataFrame, metric: str = "test_acc") -> pd.DataFrame:
    """Mean, std and count over seeds of ``metric`` for the selected variant of each group."""
    chosen = select_variants(frame)
    if chosen.empty:
        return pd.DataFrame(columns=GROUP + ["variant", "mean", "std", "seeds"])
    return (chosen.groupby(GROUP + ["variant"], dropna=False)[metric]
            .agg(mean="mean", std="std", seeds="count").reset_index())
