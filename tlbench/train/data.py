"""Fixed, seeded train/val/test splits and stratified label-fraction subsets.

The split of a dataset never depends on the run's seed, so every cell of a suite is evaluated on
the same test examples; the seed picks which training labels a label fraction keeps. Label
subsets are nested: for one seed, the examples a smaller fraction keeps are among those a larger
fraction keeps (one seeded order per class, each fraction takes its prefix), so the fractions of
a seed differ only by the labels added, not by a fresh draw.
"""
from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from tlbench.contract.values import LoadedDataset, Split

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


def prepare(dataset: LoadedDataset, dedupe: bool = True, name: str = "dataset") -> dict[str, Split]:
    """Every split a cell can use: source ``train/val/test`` and, for a shift pair,
    ``target_train/target_val/target_test``; each domain checked for duplicates
    (:func:`deduplicate`, one warning naming ``name``) and, with ``dedupe``, cleaned of
    cross-split copies."""
    splits, found = deduplicate(make_splits(dataset.source), dedupe)
    if dataset.target is not None:
        target, found_target = deduplicate(make_splits(dataset.target), dedupe)
        splits.update({f"target_{k}": v for k, v in target.items()})
        found = found + found_target
    if found.any:
        warnings.warn(f"{name}: {found.describe(dedupe)}", stacklevel=2)
    return splits


@dataclass(frozen=True)
class Duplicates:
    """Exact duplicates found in one dataset: ``within`` extra copies inside a split, ``across``
    examples of a split also in an earlier one (val in test; train in test or val), and
    ``conflicting`` contents that carry different labels."""

    within: int = 0
    across: int = 0
    conflicting: int = 0

    def __add__(self, other: "Duplicates") -> "Duplicates":
        return Duplicates(self.within + other.within, self.across + other.across,
                          self.conflicting + other.conflicting)

    @property
    def any(self) -> bool:
        return bool(self.within or self.across or self.conflicting)

    def describe(self, dropped: bool) -> str:
        across = (f"{self.across} cross-split cop{'y' if self.across == 1 else 'ies'} "
                  + ("dropped from train/val" if dropped else "kept (dedupe = false; set dedupe = true to drop them)"))
        return (f"exact duplicates: {across}, {self.within} within a split (kept), "
                f"{self.conflicting} with conflicting labels")


def fingerprints(inputs) -> list[bytes]:
    """A digest of each example's content: decoded image bytes (a tensor's rows), or text with
    case and whitespace normalised (a list of strings). Other inputs are not compared."""
    if isinstance(inputs, torch.Tensor):
        rows = inputs.reshape(len(inputs), -1).contiguous().numpy()
        return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]
    if isinstance(inputs, list):
        return [hashlib.blake2b(" ".join(str(x).lower().split()).encode(), digest_size=16).digest()
                for x in inputs]
    return []


def deduplicate(splits: dict[str, Split], dedupe: bool) -> tuple[dict[str, Split], Duplicates]:
    """Count exact duplicates of ``train/val/test`` and, with ``dedupe``, drop the examples of
    val that are also in test and of train that are also in test or val: the test set never
    changes, and no test example is also a training example."""
    prints = {name: fingerprints(split.inputs) for name, split in splits.items()}
    if not all(prints.values()):
        return splits, Duplicates()
    seen: set[bytes] = set()
    labels_of: dict[bytes, set[int]] = {}
    within = across = 0
    keep = {}
    for name in ("test", "val", "train"):  # the order in which copies are dropped
        local: set[bytes] = set()
        rows = []
        for row, (digest, label) in enumerate(zip(prints[name], splits[name].labels.tolist())):
            labels_of.setdefault(digest, set()).add(label)
            if digest in seen:
                across += 1
                if dedupe:
                    continue
            elif digest in local:
                within += 1
            local.add(digest)
            rows.append(row)
        seen |= local
        keep[name] = rows
    conflicting = sum(len(labels) > 1 for labels in labels_of.values())
    found = Duplicates(within, across, conflicting)
    if not (dedupe and across):
        return splits, found
    return {name: split.subset(torch.as_tensor(keep[name], dtype=torch.long)) if name in keep else split
            for name, split in splits.items()}, found
