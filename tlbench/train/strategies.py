"""What strategies share (as peft's ``tuners_utils`` is for its tuners): parameter counts, batch-norm
handling, the classifier with only some modules trainable, training and evaluating a classifier,
and seeding. A strategy plugin imports these from here, never from another strategy or from the
core's internals; the built-in strategies do the same.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from pydantic import Field
from torch import nn

from tlbench.contract.backbone import Classifier
from tlbench.train.context import count_params
from tlbench.contract.values import Options, Outcome

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


def seed_everything(seed: int) -> None:
    """Seed every global generator a strategy may draw from (torch, numpy, ``random``): what the
    worker does before each cell and the conformance kit before each run."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def batch_norms(module: nn.Module) -> list[nn.Module]:
    """Every batch-norm layer inside ``module``."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class FrozenNormStats(nn.Module):
    """Wraps ``model`` so that ``train()`` leaves the given batch-norm layers in eval mode.

    ``ctx.fit`` calls ``model.train()``; through this wrapper the frozen layers keep normalising
    with, and never update, their running statistics. Evaluation (``eval()``) is unchanged.
    """

    def __init__(self, model: nn.Module, frozen: list[nn.Module]):
        super().__init__()
        self.model = model
        self._frozen = list(frozen)  # a plain list: not registered twice as submodules

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)


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
