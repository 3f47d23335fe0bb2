"""What the dense tasks' heads read of a backbone's feature pyramid (``Backbone.pyramid``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.modalities.image import ImageBackbone


def pyramid_strides(backbone: ImageBackbone) -> list[int]:
    """The stride of each map of ``backbone.pyramid``, measured on one blank image of its input size
    (no gradient, every module in eval mode for it and then back in its own mode)."""
    modes = [(m, m.training) for m in backbone.modules()]
    size = backbone.input_size
    weight = next(backbone.parameters())
    try:
        with torch.no_grad():
            maps = backbone.eval().pyramid(weight.new_zeros(1, 3, size, size))
    finally:
        for module, mode in modes:
            module.training = mode
    return [round(size / m.shape[-1]) for m in maps]
