"""The MobileNetV2 backbone's module (torch): imported by :func:`tlbench.builtins.backbones.mobilenet.build`."""
from __future__ import annotations

import itertools
import math
import operator

import torch
from torch import nn

from tlbench.builtins.backbones.mobilenet import IMAGENET_MEAN, IMAGENET_STD
from tlbench.modalities.image import ImageBackbone, last_at_each_stride
from tlbench.train.peft import default_lora_targets


class MobileNetV2(ImageBackbone):
    """torchvision's MobileNetV2 feature extractor: ``features`` then global average pooling;
    :meth:`pyramid`: the last output of ``features`` at each stride from 4 to 32 (24, 32, 96 and
    1280 channels)."""

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self, features: nn.Sequential, input_size: int, source_head: nn.Module | None = None):
        super().__init__()
        self.features = features
        self.input_size = int(input_size)
        self.feature_dim = int(features[-1].out_channels)
        self.lora_targets = default_lora_targets(features, prefix="features.")
        self.pyramid_ends = stride_ends(features, smallest=4)
        self.set_source_head(source_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for i, block in enumerate(self.features[:self.pyramid_ends[-1] + 1]):
            x = block(x)
            if i in self.pyramid_ends:
                maps.append(x)
        return maps

    def pyramid_channels(self) -> list[int]:
        return [int(self.features[i].out_channels) for i in self.pyramid_ends]

    def blocks(self) -> list[nn.Module]:
        """The stem, the seven inverted-residual stages (blocks grouped by output width: 16, 24,
        32, 64, 96, 160, 320 channels) and the last 1x1 conv, input to output."""
        stem, *residual, last = self.features
        stages: list[list[nn.Module]] = []
        for block in residual:
            if stages and stages[-1][-1].out_channels == block.out_channels:
                stages[-1].append(block)
            else:
                stages.append([block])
        return [stem, *(s[0] if len(s) == 1 else nn.Sequential(*s) for s in stages), last]


def stride_ends(blocks: nn.Sequential, smallest: int) -> list[int]:
    """Indices of the blocks whose output is the last at its stride, for strides >= ``smallest``
    (a block's stride is the product of its convolutions' strides)."""
    strides = [math.prod(m.stride[0] for m in block.modules() if isinstance(m, nn.Conv2d)) for block in blocks]
    return last_at_each_stride(list(itertools.accumulate(strides, operator.mul)), smallest)
