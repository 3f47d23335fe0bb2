"""Tiny cells for the strategy tests: a :class:`CellContext` factory and a toy domain-shift pair
(dataset plugin ``toy-shift``, loaded with ``--plugin helpers.toy_cells``).

The pair: source = half of scikit-learn's handwritten digits, white on black; target = the other
half, drawn in random dark background and light ink colours per image, so that the domains differ
in colour statistics while the digits stay readable.
"""
import torch
from pydantic import Field

import tlbench
from tlbench.train import data as data_mod
from tlbench.modalities import digits, image
from tlbench.train.context import CellContext
from tlbench.contract.cells import TrainOptions


class ToyShiftOptions(tlbench.Options):
    image_size: int = Field(8, ge=8, description="the 8x8 digits are upsampled (bilinear) to this size")


def colour_shift(gray: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``N×1×H×W`` in [0, 1] -> ``N×3×H×W``: a per-image dark background and light ink colour."""
    n = gray.shape[0]
    background = torch.rand(n, 3, 1, 1, generator=generator) * 0.5
    ink = 0.5 + torch.rand(n, 3, 1, 1, generator=generator) * 0.5
    return background + (ink - background) * gray


def load(options: ToyShiftOptions) -> tlbench.LoadedDataset:
    x8, labels = digits.handwritten()
    x, y = image.upsample(x8, options.image_size), torch.from_numpy(labels)
    src, tgt = torch.arange(0, len(y), 2), torch.arange(1, len(y), 2)
    source = tlbench.Split(image.to_uint8_rgb(x[src]), y[src])
    target = tlbench.Split(image.to_uint8_rgb(colour_shift(x[tgt], torch.Generator().manual_seed(0))), y[tgt])
    return tlbench.LoadedDataset(list(digits.CLASSES), {"all": source}, {"all": target})


def make_ctx(build, loaded: tlbench.LoadedDataset, epochs: int = 1, batch_size: int = 64, min_steps: int = 0,
             seed: int = 0, label_fraction: float = 1.0) -> CellContext:
    """The context the runner would give one CPU cell of ``loaded`` with the backbone ``build``."""
    splits = data_mod.prepare(loaded)
    index = data_mod.label_subset(splits["train"].labels, label_fraction, seed)
    torch.manual_seed(seed)
    return CellContext(data={**splits, "train": splits["train"].subset(index)}, train_index=index,
                       num_classes=len(loaded.classes), device=torch.device("cpu"),
                       train=TrainOptions(epochs=epochs, batch_size=batch_size, min_steps=min_steps),
                       seed=seed, build=build, features_cache=None, label_fraction=label_fraction)


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin("toy-shift", "digits -> digits in random colours (tests)", ToyShiftOptions, load,
                                  has_target_domain=True)]
