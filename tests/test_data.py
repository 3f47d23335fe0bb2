"""The data layer: fixed stratified splits and seeded, nested label-fraction subsets."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tlbench.train.data import label_subset, make_splits
from tlbench.contract.values import Split

# unbalanced classes: 40, 23, 7 and 1 examples (a class of one must survive every fraction)
COUNTS = {0: 40, 1: 23, 2: 7, 3: 1}
FRACTIONS = [0.01, 0.05, 0.1, 0.25, 0.5, 0.9, 1.0]


def labelled(counts=COUNTS, shuffle_seed=123) -> Split:
    labels = torch.tensor([c for c, n in counts.items() for _ in range(n)])
    labels = labels[torch.as_tensor(np.random.default_rng(shuffle_seed).permutation(len(labels)))]
    inputs = torch.arange(len(labels)).reshape(-1, 1, 1, 1).to(torch.uint8)  # row i holds i
    return Split(inputs, labels)


def per_class(split: Split, index: torch.Tensor) -> dict[int, int]:
    kept = split.labels[index]
    return {c: int((kept == c).sum()) for c in COUNTS}


def check_budget(subset_fn, fraction: float, seed: int = 0) -> None:
    """``subset_fn`` keeps ceil(fraction · n_c) examples of every class c (at least one), each once."""
    split = labelled()
    index = subset_fn(split.labels, fraction, seed)
    assert per_class(split, index) == {c: max(1, math.ceil(fraction * n)) for c, n in COUNTS.items()}
    assert len(set(index.tolist())) == len(index)  # no example twice
    assert index.tolist() == sorted(index.tolist())


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_label_subset_keeps_ceil_fraction_per_class(fraction):
    check_budget(label_subset, fraction)


def test_label_subset_fraction_one_is_everything():
    split = labelled()
    assert label_subset(split.labels, 1.0, seed=5).tolist() == list(range(len(split)))


def test_label_subset_is_seeded():
    split = labelled()
    for fraction in (0.1, 0.5):
        same = [label_subset(split.labels, fraction, seed=3) for _ in range(2)]
        assert torch.equal(*same)
        other = label_subset(split.labels, fraction, seed=4)
        assert len(other) == len(same[0])  # same budget ...
        assert set(other.tolist()) != set(same[0].tolist())  # ... other examples


def test_label_subsets_are_nested_across_fractions():
    """A smaller budget's examples are a subset of a larger budget's, for the same seed: the
    fractions of one seed differ only in how many labels they add, not in which."""
    split = labelled()
    for seed in (0, 1, 7):
        subsets = [set(label_subset(split.labels, f, seed).tolist()) for f in FRACTIONS]
        for small, large in zip(subsets, subsets[1:]):
            assert small <= large, seed


@pytest.mark.parametrize("mutant", [
    lambda labels, fraction, seed: torch.arange(len(labels)),                 # keeps everything
    lambda labels, fraction, seed: label_subset(labels, 0.5, seed),           # a fixed budget
    lambda labels, fraction, seed: label_subset(labels, min(1.0, 2 * fraction), seed),
], ids=["all", "fixed-half", "double"])
def test_a_subset_that_ignores_the_fraction_fails_the_budget_check(mutant):
    """Mutation check: check_budget (the test above) rejects a label_subset that ignores or
    misreads the fraction."""
    with pytest.raises(AssertionError):
        for fraction in (0.1, 0.25):
            check_budget(mutant, fraction)


# --------------------------------------------------------------------------- fixed splits

def dataset(n_per_class=(100, 60, 40)) -> dict[str, Split]:
    return {"all": labelled(dict(enumerate(n_per_class)), shuffle_seed=9)}


def ids(split: Split) -> set[int]:
    return set(split.inputs.flatten().tolist())


def test_make_splits_sizes_disjoint_and_complete():
    parts = dataset()
    splits = make_splits(parts)
    n = len(parts["all"])
    sizes = {k: len(v) for k, v in splits.items()}
    assert sizes == {"train": 130, "val": 30, "test": 40}  # 65 / 15 / 20 % of 200
    assert sum(sizes.values()) == n
    train, val, test = (ids(splits[k]) for k in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test
    assert train | val | test == set(range(n))
    # each row keeps its own label
    for s in splits.values():
        assert torch.equal(parts["all"].labels[s.inputs.flatten().long()], s.labels)


def test_make_splits_are_stratified():
    splits = make_splits(dataset())
    for name, share in (("train", .65), ("val", .15), ("test", .2)):
        counts = torch.bincount(splits[name].labels, minlength=3).tolist()
        assert counts == [round(share * n) for n in (100, 60, 40)], name


def test_make_splits_fixed_across_calls():
    a, b = make_splits(dataset()), make_splits(dataset())
    for k in ("train", "val", "test"):
        assert torch.equal(a[k].inputs, b[k].inputs)


def test_make_splits_carves_val_from_train_when_test_is_given():
    parts = make_splits(dataset())
    given = {"train": parts["train"], "test": parts["test"]}
    out = make_splits(given)
    assert out["test"] is given["test"]
    assert len(out["val"]) == round(0.15 * len(parts["train"]))
    assert not ids(out["train"]) & ids(out["val"])
    assert ids(out["train"]) | ids(out["val"]) == ids(parts["train"])
    with pytest.raises(ValueError, match="all | train"):
        make_splits({"train": parts["train"]})
