"""A real cross-dataset domain shift: MNIST -> scikit-learn's handwritten digits.

*source*: MNIST (NIST writers; 28x28 anti-aliased grey, the digit in a 20x20 box centred by
mass), with its official train/val/test splits, ``max_per_class`` of each class per split.
*target*: scikit-learn's 1,797 UCI digits (43 other writers; 32x32 bitmaps reduced to 8x8 with
17 grey levels, the digit filling the frame), split by the core (fixed, stratified 65/15/20).
Both are brought to one format, white on black, uint8 RGB ``image_size`` squares: MNIST
resized bilinearly from 28, the 8x8 digits upsampled the way the ``digits`` dataset does.
Writers, resolution, grey levels and framing all differ: a real shift, not a synthetic one.
"""
from __future__ import annotations

import torch
from pydantic import Field

import tlbench
from tlbench.builtins.datasets.digits import CLASSES, handwritten, to_uint8_rgb, upsample
from tlbench.builtins.datasets.mnist import mnist_splits
from tlbench.builtins.datasets.sampling import max_per_class_field, seed_field


class MnistToDigitsOptions(tlbench.Options):
    image_size: int = Field(32, ge=8, le=256, description="side of the square images of both domains")
    max_per_class: int | None = max_per_class_field()
    seed: int = seed_field()


def load(options: MnistToDigitsOptions) -> tlbench.LoadedDataset:
    x, y = handwritten()
    return tlbench.LoadedDataset(
        classes=list(CLASSES),
        source=mnist_splits(options.image_size, options.max_per_class, options.seed),
        target={"all": tlbench.Split(to_uint8_rgb(upsample(x, options.image_size)), torch.from_numpy(y))},
    )


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin(
        "mnist2digits", "domain shift: MNIST (70k, 28x28) -> scikit-learn's 1,797 handwritten 8x8 "
                        "digits (other writers and resolution), both white on black",
        MnistToDigitsOptions, load, has_target_domain=True)]
