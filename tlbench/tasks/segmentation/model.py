"""The segmentation model (torch; torchvision imported when one is built): a backbone's feature
pyramid under torchvision's LR-ASPP head."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from tlbench.contract.backbone import TaskModel
from tlbench.tasks.pyramid import pyramid_strides

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.modalities.image import ImageBackbone


#: the largest stride of the map the high branch reads (LR-ASPP's output stride)
HIGH_STRIDE = 16


class Segmenter(TaskModel):
    """Raw uint8 images ``B×3×H×W`` in, per-pixel logits ``B×C×H×W`` out (``C = num_classes``,
    background included). ``backbone`` is the tlbench backbone (what strategies freeze or adapt);
    ``head``, everything new: torchvision's ``LRASPPHead`` on the finest map of ``backbone.pyramid``
    (``low``) and its deepest map of stride at most 16 (``high``: LR-ASPP reads its high branch at
    output stride 16, MobileNetV3's last stage dilated; on a small image a stride-32 map is a couple
    of cells); its logits are upsampled (bilinear) to the raw images' size."""

    def __init__(self, backbone: ImageBackbone, num_classes: int, inter_channels: int = 128):
        from torchvision.models.segmentation.lraspp import LRASPPHead

        super().__init__()
        channels, strides = backbone.pyramid_channels(), pyramid_strides(backbone)
        self.high = max((i for i, stride in enumerate(strides) if stride <= HIGH_STRIDE), default=0)
        self.backbone = backbone
        self.head = LRASPPHead(channels[0], channels[self.high], num_classes, inter_channels)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        maps = self.backbone.pyramid(self.backbone.prepare(inputs))
        logits = self.head({"low": maps[0], "high": maps[self.high]})
        return nn.functional.interpolate(logits, size=inputs.shape[-2:], mode="bilinear", align_corners=False)
