"""Fixed, seeded train/val/test splits and stratified label-fraction subsets.

The split of a dataset never depends on the run's seed, so every cell of a suite is evaluated on
the same test examples; the seed picks which training labels a label fraction keeps. Label
subsets are nested: for one seed, the examples a smaller fraction keeps are among those a larger
fraction keeps (one seeded order per class, each fraction takes its prefix), so the fractions of
a seed differ only by the labels added, not by a fresh draw.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from tlbench.records import LoadedDataset, Split

SPLIT_SEED = 0
VAL_FRACTION = 0.15
TEST_FRACTION = 0.2


def _carve(split: Split, fraction: float) -> tuple[Split, Split]:
    """Stratified (rest, carved) pair with ``fraction`` of the examples carved out."""
    index = np.arange(len(split))
    labels = split.labels.numpy()
    rest, carved = train_test_split(index, test_size=fraction, random_state=SPLIT_SEED,
                                    stratify=labels if np.bincount(labels).min() >= 2 else None)
    return split.subset(torch.as_tensor(np.sort(rest))), split.subset(torch.as_tensor(np.sort(carved)))


def make_splits(parts: dict[str, Split]) -> dict[str, Split]:
    """``{"all"}``, ``{"train", "test"}`` or ``{"train", "val", "test"}`` -> all three."""
    if set(parts) == {"train", "val", "test"}:
        return dict(parts)
    if set(parts) == {"train", "test"}:
        train, val = _carve(parts["train"], VAL_FRACTION)
        return {"train": train, "val": val, "test": parts["test"]}
    if set(parts) == {"all"}:
        rest, test = _carve(parts["all"], TEST_FRACTION)
        train, val = _carve(rest, VAL_FRACTION / (1 - TEST_FRACTION))
        return {"train": train, "val": val, "test": test}
    raise ValueError(f"a dataset must give splits all | train+test | train+val+test, not {sorted(parts)}")


def label_subset(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Sorted indices of ``ceil(fraction · n_c)`` examples of every class c (at least one), for
    these (CPU) labels.

    Each class's examples are put in one order drawn from ``(seed, class)`` and the first ones
    are kept, so subsets of the same seed are nested across fractions and a class's draw does
    not depend on the other classes. ``fraction >= 1`` keeps everything.
    """
    if fraction >= 1.0:
        return torch.arange(len(labels))
    labels = labels.numpy()
    keep = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        order = np.random.default_rng([seed, int(cls)]).permutation(members)
        keep.extend(order[:max(1, math.ceil(fraction * len(members)))])
    return torch.as_tensor(np.sort(keep))


def prepare(dataset: LoadedDataset) -> dict[str, Split]:
    """Every split a cell can use: source ``train/val/test`` and, for a shift pair,
    ``target_train/target_val/target_test``."""
    splits = make_splits(dataset.source)
    if dataset.target is not None:
        splits.update({f"target_{k}": v for k, v in make_splits(dataset.target).items()})
    return splits
