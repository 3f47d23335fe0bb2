"""The detection model (torch; torchvision imported when one is built): a backbone's feature
pyramid under an FPN and torchvision's anchor-free FCOS detector."""
from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
from torch import nn

from tlbench.contract.backbone import TaskModel
from tlbench.contract.step import ModelLoss
from tlbench.tasks.pyramid import pyramid_strides

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.modalities.image import ImageBackbone


class Detector(TaskModel):
    """Raw uint8 images ``B×3×H×W`` in (any H, W: ``backbone.prepare`` resizes them to its
    ``input_size``); boxes in the raw images' pixels both ways.

    ``backbone`` is the tlbench backbone (what strategies freeze or adapt); ``head``, everything
    new: torchvision's ``FCOS`` whose own backbone is a :class:`PyramidFPN` over the last
    ``levels`` maps of ``backbone.pyramid``, one location size per level equal to its stride (FCOS
    assigns an object to the level whose size is 4-8 times smaller than its longer side), and whose
    image transform neither resizes nor normalises (``prepare`` did both; batches are not padded).

    ``forward(inputs, targets)`` in training mode takes ``targets`` ``B×M×5`` ``(class, x1, y1,
    x2, y2)`` (rows of class -1 are padding; classes ``0..num_classes-1``) and returns a
    :class:`ModelLoss`. ``forward(inputs)`` in eval mode returns ``B×K×6`` ``(x1, y1, x2, y2,
    score, class)``, best first, ``K = detections_per_img``, padded with rows of score 0, class -1.
    ``score_thresh`` is low so that mAP sees the whole precision-recall curve. The defaults suit
    small images (48-128 px, objects of 10-40 px) on a CPU: a 64-channel FPN (``fpn_channels``, a
    multiple of 32 for the FCOS head's GroupNorm) and two convolutions per FCOS branch.
    """

    def __init__(self, backbone: ImageBackbone, num_classes: int, *, levels: int = 3, fpn_channels: int = 64,
                 head_convs: int = 2, score_thresh: float = 0.05, nms_thresh: float = 0.6,
                 detections_per_img: int = 50):
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        from torchvision.models.detection.fcos import FCOS, FCOSHead

        super().__init__()
        self.backbone = backbone
        neck = PyramidFPN(backbone, levels, fpn_channels)
        strides = pyramid_strides(backbone)[-neck.levels:]
        size = backbone.input_size
        self.head = FCOS(neck, num_classes, min_size=size, max_size=size, image_mean=[0.0] * 3, image_std=[1.0] * 3,
                         size_divisible=1, anchor_generator=AnchorGenerator(tuple((s,) for s in strides),
                                                                            ((1.0,),) * len(strides)),
                         head=FCOSHead(fpn_channels, 1, num_classes, num_convs=head_convs),
                         score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_img=detections_per_img)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> ModelLoss | torch.Tensor:
        images = self.backbone.prepare(inputs)
        size = self.backbone.input_size
        height, width = inputs.shape[-2:]
        to_input = images.new_tensor([size / width, size / height] * 2)  # raw pixels -> input pixels
        if self.training:
            if targets is None:  # precise batch norm re-estimates statistics by passing batches alone
                return self.head.backbone(images)
            boxes = [{"boxes": t[t[:, 0] >= 0, 1:] * to_input, "labels": t[t[:, 0] >= 0, 0].long()}
                     for t in targets]
            parts = self.head(list(images), boxes)
            return ModelLoss(torch.stack(list(parts.values())).sum(), parts)
        if targets is not None:
            raise ValueError("Detector: eval mode detects and takes no targets; call .train() for the loss")
        found = self.head(list(images))
        out = images.new_zeros(len(found), self.head.detections_per_img, 6)
        out[..., 5] = -1
        for i, d in enumerate(found):
            out[i, :len(d["scores"])] = torch.cat([d["boxes"] / to_input, d["scores"][:, None],
                                                  d["labels"][:, None].to(out.dtype)], 1)
        return out


class PyramidFPN(nn.Module):
    """What torchvision's detector calls its backbone: prepared images in, an OrderedDict of
    ``out_channels``-wide maps out, by torchvision's ``FeaturePyramidNetwork`` over the last
    ``levels`` maps of the tlbench backbone's pyramid (all of them if it has fewer). The tlbench
    backbone is referenced, not registered: its parameters stay the :class:`Detector`'s
    ``backbone``'s, out of ``head``; it moves, trains and copies with the Detector."""

    def __init__(self, backbone: ImageBackbone, levels: int, out_channels: int):
        from torchvision.ops import FeaturePyramidNetwork

        super().__init__()
        self.__dict__["body"] = backbone
        channels = backbone.pyramid_channels()[-levels:]
        self.levels = len(channels)
        self.out_channels = out_channels
        self.fpn = FeaturePyramidNetwork(channels, out_channels)

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        maps = self.body.pyramid(images)[-self.levels:]
        return self.fpn(OrderedDict((str(i), m) for i, m in enumerate(maps)))
