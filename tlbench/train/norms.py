"""Batch-norm handling for strategies: finding the layers and keeping frozen ones in eval mode.

Public through :mod:`tlbench.train.strategies` (which loads this module, and torch, on first use).
"""
from __future__ import annotations

from torch import nn

__all__ = ["FrozenNormStats", "batch_norms"]


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
