"""Hyper-parameter selection on the validation split, and the per-seed summary built on it.

A suite's lists of strategy or training options expand into *variants* of one strategy. For each
(backbone, dataset, strategy, label fraction) the variant with the best mean validation
accuracy over seeds is selected; its test numbers are reported. Test accuracy never takes part.
The intervals of the summary come from :mod:`tlbench.stats`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from tlbench.stats import Scores, mean_interval

if TYPE_CHECKING:
    from tlbench.evidence import SplitEvidence

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


def group_scores(rows: pd.DataFrame, metric: str = "test_acc",
                 evidence: Mapping[str, Mapping[str, SplitEvidence]] | None = None) -> Scores:
    """The :class:`~tlbench.stats.Scores` of one group's rows (one per seed): right/wrong per
    test example (on ``target_test`` for a shift pair, else ``test``) when ``metric`` is
    ``test_acc`` and every row's cell has that evidence; otherwise each seed's ``metric``."""
    rows = rows.dropna(subset=[metric])
    if metric == "test_acc" and evidence:
        per_seed = {}
        for r in rows.itertuples(index=False):
            split = evidence.get(r.cell_id, {}).get(
                "target_test" if r.has_target_domain else "test")
            if split is None:
                break
            per_seed[int(r.seed)] = (split.index, split.correct)
        else:
            scores = Scores.from_examples(per_seed) if per_seed else None
            if scores is not None and scores.values.shape[1]:
                return scores
    return Scores.from_seed_means(dict(zip(rows["seed"].astype(int), rows[metric])))


def summarize(selected: pd.DataFrame, metric: str = "test_acc",
              evidence: Mapping[str, Mapping[str, SplitEvidence]] | None = None) -> pd.DataFrame:
    """Per group (backbone, dataset, strategy, label fraction) of the selected variant: seed
    count, mean and std over seeds of ``metric``, and the 95% interval of the mean
    (:func:`tlbench.stats.mean_interval`). ``interval`` says what it resamples: "examples" (seeds
    and test examples, from the per-example ``evidence``) or "seeds" (seed-level numbers only:
    no test-set noise; no interval from one seed)."""
    cols = GROUP + ["variant", "has_target_domain", "seeds", "mean", "std", "ci_low",
                    "ci_high", "interval"]
    rows = []
    for key, g in selected.groupby(GROUP + ["variant"], dropna=False, sort=True):
        g = g.dropna(subset=[metric])
        if g.empty:
            continue
        scores = group_scores(g, metric, evidence)
        n = len(g)
        if scores.per_example or n > 1:
            iv = mean_interval(scores)
            lo, hi = iv.low, iv.high
        else:
            lo = hi = math.nan
        sd = float(g[metric].std(ddof=1)) if n > 1 else math.nan
        rows.append(list(key) + [bool(g["has_target_domain"].iloc[0]), n, float(g[metric].mean()),
                                 sd, lo, hi, "examples" if scores.per_example else "seeds"])
    return pd.DataFrame(rows, columns=cols)
