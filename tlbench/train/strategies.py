"""What strategies share (as peft's ``tuners_utils`` is for its tuners): parameter counts, batch-norm
handling, the classifier with only some modules trainable, training and evaluating a classifier,
and seeding. A strategy plugin imports these from here, never from another strategy or from the
core's internals; the built-in strategies do the same.

Importing this module does not import torch, so that a strategy plugin can name its options, grid
and help from here without it (``tlbench list`` imports every plugin): the functions import torch
when called, and :class:`FrozenNormStats` and :func:`batch_norms` (:mod:`tlbench.train.norms`) are
loaded on first use.
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING

from pydantic import Field

from tlbench.contract.values import Options, Outcome

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from tlbench.contract.backbone import Classifier
    from tlbench.train.norms import FrozenNormStats, batch_norms  # noqa: F401

__all__ = ["BN_STATS_HELP", "FINETUNE_GRID", "FinetuneOptions", "FrozenNormStats", "batch_norms", "count_params",
           "seed_everything", "train_classifier", "train_only"]

#: AdamW peak learning rates around which fine-tuning pretrained weights works (and its default sweep)
FINETUNE_GRID = {"lr": [3e-4, 1e-3, 3e-3]}

BN_STATS_HELP = ('"frozen": batch-norm layers whose parameters are frozen keep their pretrained running '
                 'statistics (eval mode while training); "update": every batch-norm layer re-estimates them')


class FinetuneOptions(Options):
    """The options of training a classifier with AdamW (warm-up, then cosine decay)."""

    lr: float = Field(1e-3, gt=0, description="peak AdamW learning rate (warm-up, then cosine decay)")
    weight_decay: float = Field(0.05, ge=0, description="AdamW weight decay")


def __getattr__(name: str):
    if name in ("FrozenNormStats", "batch_norms"):  # nn.Module code: torch is imported here
        from tlbench.train import norms

        return getattr(norms, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def count_params(*modules: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters of the modules together."""
    params = {id(p): p for m in modules for p in m.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def seed_everything(seed: int) -> None:
    """Seed every global generator a strategy may draw from (torch, numpy, ``random``): what the
    worker does before each cell and the conformance kit before each run."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def train_only(classifier: Classifier, modules: list[nn.Module]) -> Classifier:
    """``classifier`` with every weight frozen except those of ``modules`` and of its (new) head."""
    classifier.requires_grad_(False)
    for module in modules:
        module.requires_grad_(True)
    classifier.head.requires_grad_(True)
    return classifier


def train_classifier(ctx, options: FinetuneOptions, pretrained: bool, split: str = "train",
                     recalibrate_bn: bool = False) -> Outcome:
    """Train a fresh backbone (pretrained or randomly initialised) and a new head on ``split`` with
    ``options.lr`` / ``options.weight_decay``, optionally re-estimating its batch-norm statistics
    (precise BN) before every evaluation (``ctx.fit(..., recalibrate_bn=True)``), and return the
    logits of every evaluation split with the parameter counts."""
    model = ctx.classifier(pretrained=pretrained)
    ctx.fit(model, options.lr, options.weight_decay, split=split, recalibrate_bn=recalibrate_bn)
    return Outcome(ctx.predict(model), *count_params(model))
