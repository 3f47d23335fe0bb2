"""Hyper-parameter selection on the validation split, and the per-seed summary built on it.

A suite's lists of strategy or training options expand into *variants* of one strategy. For each
(backbone, dataset, strategy, label fraction) **each seed selects its own variant** on its own
validation split (its label budget cuts validation too) and its test numbers are reported: the
whole procedure, selection included, is repeated per seed, as DomainBed repeats its trials, so the
noise of choosing on a small validation split is part of the seed-to-seed spread and therefore of
every interval. Test accuracy never takes part. The intervals of the summary come from
:mod:`tlbench.analysis.stats`.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tlbench.analysis.stats import Scores, estimate, row_floor
from tlbench.tasks.task import scores

if TYPE_CHECKING:
    from tlbench.contract.evidence import SplitEvidence

GROUP = ["backbone", "dataset", "strategy", "label_fraction"]


def task_column(frame: pd.DataFrame) -> pd.Series:
    """Each record's task (:mod:`tlbench.tasks`); records written before tasks were stored (no
    ``task`` column, or an empty one) are classification's."""
    if "task" not in frame.columns:
        return pd.Series("classification", index=frame.index, dtype=object)
    return frame["task"].fillna("classification").astype(str)


def select_variants(frame: pd.DataFrame, by: str = "val_acc") -> pd.DataFrame:
    """The row of the selected variant of each group and seed (highest ``by``; ties: the first
    variant in sorted order); only ``ok`` rows.

    ``by="target_val_acc"`` gives the oracle choice for domain shifts (it uses target labels).
    """
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return ok
    keys = GROUP + ["seed"]
    ranked = ok.sort_values(keys + [by, "variant"], ascending=[True] * len(keys) + [False, True],
                            na_position="last")
    return ranked.drop_duplicates(keys).sort_index()


def chosen_variants(rows: pd.DataFrame) -> tuple[str, float]:
    """The variant most seeds of one group chose (ties: sorted order) and the share of seeds that
    chose it: 1.0 when every seed agreed, lower when the choice on validation was noisy."""
    counts = Counter(rows["variant"])
    variant = min(counts, key=lambda v: (-counts[v], v))
    return variant, counts[variant] / len(rows)


def accuracy_split(has_target_domain: bool) -> str:
    """The split ``test_acc`` is scored on: ``target_test`` for a shift pair, else ``test``."""
    return "target_test" if has_target_domain else "test"


def accuracy_evidence(rows: pd.DataFrame, evidence: Mapping[str, Mapping[str, SplitEvidence]]
                  ) -> dict[int, SplitEvidence] | None:
    """``seed ->`` the evidence of one group's rows (one per seed) on :func:`accuracy_split`; None
    when a row's cell has none."""
    found = {int(r.seed): evidence.get(r.cell_id, {}).get(accuracy_split(bool(r.has_target_domain)))
             for r in rows.itertuples(index=False)}
    return None if any(e is None for e in found.values()) else found


def example_values(metric: str, splits: Mapping[str, SplitEvidence],
                   has_target_domain: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """``(index, values)``: one cell's per-example values whose mean is its ``metric``, from its
    evidence ``splits``; None when the metric has none or the evidence lacks the split.

    For a task's score (``acc``, ``ap``, ``iou``: :mod:`tlbench.tasks`): ``test_<score>`` on
    ``target_test`` (a shift pair) or ``test``; ``source_test_<score>`` on ``test``;
    ``ood_<score>:<set>`` on ``ood:<set>``. ``reference_acc:<task>``: the adapted backbone's probe on
    ``reference:<task>``; ``forgetting:<task>``: the pretrained probe's right/wrong minus the adapted
    one's, per example (``reference0:<task>`` − ``reference:<task>``). Classification's values are
    1 (right) and 0 (wrong)."""
    kind, _, name = metric.partition(":")
    splits_of = {"reference_acc": f"reference:{name}"}
    for score in scores():
        splits_of |= {f"test_{score}": accuracy_split(has_target_domain), f"source_test_{score}": "test",
                      f"ood_{score}": f"ood:{name}"}
    split = splits_of.get(kind)
    if split is not None:
        found = splits.get(split)
        return None if found is None else (found.index, found.values)
    if kind == "forgetting":
        before, after = splits.get(f"reference0:{name}"), splits.get(f"reference:{name}")
        if before is None or after is None:
            return None
        return after.index, before.values - after.values
    return None


def group_scores(rows: pd.DataFrame, metric: str = "test_acc",
                 evidence: Mapping[str, Mapping[str, SplitEvidence]] | None = None) -> Scores:
    """The :class:`~tlbench.analysis.stats.Scores` of one group's rows (one per seed): per test
    example (:func:`example_values`) when every row's cell has the evidence ``metric`` needs;
    otherwise each seed's ``metric``."""
    rows = rows.dropna(subset=[metric])
    if evidence:
        per_seed = {}
        for r in rows.itertuples(index=False):
            values = example_values(metric, evidence.get(r.cell_id, {}), bool(r.has_target_domain))
            if values is None:
                break
            per_seed[int(r.seed)] = values
        else:
            scores = Scores.from_examples(per_seed) if per_seed else None
            if scores is not None and scores.values.shape[1]:
                return scores
    return Scores.from_seed_means(dict(zip(rows["seed"].astype(int), rows[metric])))


def summarize_seeds(selected: pd.DataFrame, metric: str = "test_acc",
                    evidence: Mapping[str, Mapping[str, SplitEvidence]] | None = None) -> pd.DataFrame:
    """Per group (backbone, dataset, strategy, label fraction), over the seeds' selected variants:
    seed count, mean and std over seeds of ``metric``, the 95% interval of the mean
    (:func:`tlbench.analysis.stats.estimate`, its seed term floored by the row's pooled one), the variant
    most seeds chose and the share that chose it (``agreement``). ``interval`` says what it
    covers: "examples" (seeds and test examples, from the per-example ``evidence``) or "seeds"
    (seed-level numbers only: no test-set noise; no interval from one seed)."""
    cols = GROUP + ["variant", "agreement", "has_target_domain", "seeds", "mean", "std", "ci_low",
                    "ci_high", "interval"]
    groups = {key: g.dropna(subset=[metric])
              for key, g in selected.groupby(GROUP, dropna=False, sort=True)}
    scores = {key: group_scores(g, metric, evidence) for key, g in groups.items() if not g.empty}
    floors = {row: row_floor(sc for (b, d, _, f), sc in scores.items() if (b, d, f) == row)
              for row in {(b, d, f) for b, d, _, f in scores}}
    rows = []
    for key, g in groups.items():
        if g.empty:
            continue
        backbone, dataset, _, fraction = key
        iv = estimate(scores[key], floors[(backbone, dataset, fraction)]).interval(bounds=(0.0, 1.0))
        n = len(g)
        sd = float(g[metric].std(ddof=1)) if n > 1 else math.nan
        variant, agreement = chosen_variants(g)
        rows.append(list(key) + [variant, agreement, bool(g["has_target_domain"].iloc[0]), n,
                                 float(g[metric].mean()), sd, iv.low, iv.high,
                                 "examples" if scores[key].per_example else "seeds"])
    return pd.DataFrame(rows, columns=cols)
