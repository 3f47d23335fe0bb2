"""A three-block CNN for fast tests and tiny images; it has no pretrained weights. The network
(:class:`~tlbench.builtins.backbones.tiny_cnn.model.TinyCNN`, torch) is imported when built."""
from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

import tlbench
from tlbench.plan.preflight import nothing_to_check

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.builtins.backbones.tiny_cnn.model import TinyCNN


class TinyCNNOptions(tlbench.Options):
    width: int = Field(16, gt=0, description="channels of the first block (doubled per block)")
    input_size: int = Field(16, gt=0, description="images are resized to this square size")


def build(options: TinyCNNOptions, pretrained: bool) -> TinyCNN:
    """Randomly initialised. ``pretrained=True`` gives one fixed random network (seed 0), as real
    pretrained weights are fixed: its features are then the same whichever cell, process or worker
    computes them first (the feature cache is keyed on the backbone's options)."""
    import torch

    from tlbench.builtins.backbones.tiny_cnn.model import TinyCNN

    if not pretrained:
        return TinyCNN(options.width, options.input_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return TinyCNN(options.width, options.input_size)


@tlbench.hookimpl
def tlbench_backbones():
    return [tlbench.BackbonePlugin("tiny_cnn", "three conv blocks, random init (pretrained: a fixed seed-0 init); for tests and smoke runs",
                                   TinyCNNOptions, build, check=nothing_to_check)]
