"""The MobileNetV2 backbone's module (torch): imported by :func:`tlbench.builtins.backbones.mobilenet.build`."""
from __future__ import annotations

import torch
from torch import nn

from tlbench.builtins.backbones.mobilenet import IMAGENET_MEAN, IMAGENET_STD
from tlbench.modalities.image import ImageBackbone
from tlbench.train.peft import default_lora_targets


class MobileNetV2(ImageBackbone):
    """torchvision's MobileNetV2 feature extractor: ``features`` then global average pooling."""

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self, features: nn.Sequential, input_size: int, source_head: nn.Module | None = None):
        super().__init__()
        self.features = features
        self.input_size = int(input_size)
        self.feature_dim = int(features[-1].out_channels)
        self.lora_targets = default_lora_targets(features, prefix="features.")
        self.set_source_head(source_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)

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
