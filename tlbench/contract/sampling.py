"""Stratified, seeded subsampling shared by the large dataset plugins (``max_per_class``)."""
from __future__ import annotations

import numpy as np
from pydantic import Field

MAX_PER_CLASS_HELP = ("keep at most this many examples of each class (per split where the dataset "
                      "has official splits), drawn with `seed`; none: all")


def max_per_class_field():
    return Field(None, ge=1, description=MAX_PER_CLASS_HELP)


def seed_field():
    return Field(0, description="seed of the examples that max_per_class keeps")


def per_class_index(labels: np.ndarray, max_per_class: int | None, seed: int) -> np.ndarray:
    """Sorted indices keeping at most ``max_per_class`` examples of each class, chosen at random
    (``seed``) within each class; every index when ``max_per_class`` is None. Deterministic."""
    labels = np.asarray(labels)
    if max_per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) > max_per_class:
            members = rng.choice(members, size=max_per_class, replace=False)
        keep.append(members)
    return np.sort(np.concatenate(keep))
