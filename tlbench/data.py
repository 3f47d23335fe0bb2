"""Fixed, seeded train/val/test splits and stratified label-fraction subsets.

The split of a dataset never depends on the run's seed, so every cell of a suite is evaluated on
the same test examples; the seed picks which training labels a label fraction keeps.
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
    """Indices of a stratified ``fraction`` of the examples with these (CPU) labels (at least one
    per class), chosen by seed."""
    if fraction >= 1.0:
        return torch.arange(len(labels))
    rng = np.random.default_rng(seed)
    labels = labels.numpy()
    keep = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        keep.extend(rng.choice(members, size=max(1, math.ceil(fraction * len(members))), replace=False))
    return torch.as_tensor(np.sort(keep))


def prepare(dataset: LoadedDataset) -> dict[str, Split]:
    """Every split a cell can use: source ``train/val/test`` and, for a shift pair,
    ``target_train/target_val/target_test``."""
    splits = make_splits(dataset.source)
    if dataset.target is not None:
        splits.update({f"target_{k}": v for k, v in make_splits(dataset.target).items()})
    return splits
