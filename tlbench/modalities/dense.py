"""What detection and segmentation datasets share: their ``targets`` and ``labels`` (strata) as
:class:`tlbench.Split` defines them, and masks squared exactly like their images.

Detection ``targets``: ``N×M×5`` float32 rows ``(class, x1, y1, x2, y2)`` in pixels (x2, y2
exclusive), padded with rows of -1; stratum: the class of the image's largest box (by area, the
first on a tie). Segmentation ``targets``: ``N×H×W`` int64, 255 unlabelled; stratum: the most
frequent class other than 0 (the lowest on a tie; 0 when none).

Imports torch: a dataset plugin imports it inside its ``load``.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from tlbench.contract.values import UNLABELLED as IGNORE
from tlbench.contract.values import Split
from tlbench.modalities.image import square

__all__ = ["IGNORE", "detection_split", "segmentation_split", "square_mask"]


def detection_split(images: torch.Tensor, boxes: list[np.ndarray]) -> Split:
    """A split of ``images`` whose ``targets`` pad each image's ``K×5`` ``boxes`` to ``M`` rows
    (``M``: the most any image has) with rows of -1, and whose labels are the strata (0 for an
    image without boxes)."""
    most = max((len(b) for b in boxes), default=0)
    targets = torch.full((len(boxes), most, 5), -1.0)
    strata = torch.zeros(len(boxes), dtype=torch.int64)
    for i, rows in enumerate(boxes):
        if len(rows):
            targets[i, :len(rows)] = torch.as_tensor(rows, dtype=torch.float32)
            area = (rows[:, 3] - rows[:, 1]) * (rows[:, 4] - rows[:, 2])
            strata[i] = int(rows[int(np.argmax(area)), 0])
    return Split(images, strata, targets)


def segmentation_split(images: torch.Tensor, masks: torch.Tensor, num_classes: int) -> Split:
    """A split of ``images`` with ``masks`` (``N×H×W`` int64 in ``[0, num_classes)`` or 255) as
    ``targets`` and the strata as labels."""
    rows = torch.arange(len(masks)).view(-1, 1, 1).expand_as(masks)
    valid = masks != IGNORE
    counts = torch.bincount((rows * num_classes + masks)[valid], minlength=len(masks) * num_classes)
    counts = counts.view(len(masks), num_classes)
    counts[:, 0] = 0
    top = counts.max(dim=1)
    strata = torch.where(top.values > 0, top.indices, 0)
    return Split(images, strata, masks)


def square_mask(mask: Image.Image, size: int) -> torch.Tensor:
    """A class-index mask (PIL mode ``L``, ``P`` or ``I``) as ``size×size`` int64, resized
    (nearest) and cropped exactly as :func:`tlbench.modalities.image.square_rgb` squares its image."""
    return torch.from_numpy(np.array(square(mask, size, Image.NEAREST)).astype(np.int64))
