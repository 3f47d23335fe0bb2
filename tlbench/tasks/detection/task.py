"""Object detection: boxes and classes per image (``Split.targets``: ``N×M×5`` ``(class, x1, y1, x2,
y2)`` in the image's pixels, padding rows of class -1). The model is torchvision's FCOS on a feature
pyramid network over the backbone's pyramid (:mod:`.model`); the loss is the detector's own; the
score is each image's COCO AP, with the split's COCO mAP and mAP@.5 (:mod:`.metrics`)."""
from __future__ import annotations

from functools import partial

from tlbench.tasks.task import Task, imported, register


def _step(model, train):
    from tlbench.contract.step import OwnLossStep

    return OwnLossStep(model)


def _example(n: int, size: int, num_classes: int):
    """``n`` random images with one box each (the first image two, the others a padding row), of the
    classes in turn, a quarter to a half of the image wide."""
    import numpy as np

    from tlbench.modalities.dense import detection_split
    from tlbench.modalities.modality import get

    quarter = size // 4
    boxes = [np.array([(i % num_classes, quarter, quarter, 2 * quarter + i % quarter, 3 * quarter)]
                      + [((i + 1) % num_classes, 0, 0, quarter, quarter)] * (i == 0), np.float32) for i in range(n)]
    return detection_split(get("image").example(n, size), boxes)


def check_targets(split, num_classes: int) -> None:
    """``targets``: float ``N×M×5`` rows ``(class, x1, y1, x2, y2)``, class in ``[-1, num_classes)``
    (-1: padding), ``x1 < x2`` and ``y1 < y2`` in every row that is not padding."""
    import torch

    targets = split.targets
    if not isinstance(targets, torch.Tensor) or targets.ndim != 3 or targets.shape[2] != 5 \
            or len(targets) != len(split):
        raise ValueError(f"detection targets must be a N×M×5 tensor (class, x1, y1, x2, y2) with N = {len(split)} "
                         f"examples; got {tuple(getattr(targets, 'shape', ())) or type(targets).__name__}")
    if not targets.dtype.is_floating_point:
        raise ValueError(f"detection targets must be float (pixels), got {targets.dtype}")
    kind = targets[..., 0]
    if (kind != kind.round()).any() or kind.min() < -1 or kind.max() >= num_classes:
        raise ValueError(f"detection targets: classes must be integers in [-1, {num_classes}) (-1: padding), "
                         f"found [{kind.min():g}, {kind.max():g}]")
    boxes = targets[kind >= 0]
    flat = (boxes[:, 1] >= boxes[:, 3]) | (boxes[:, 2] >= boxes[:, 4])
    if flat.any():
        raise ValueError(f"detection targets: {int(flat.sum())} box(es) with x1 >= x2 or y1 >= y2, e.g. "
                         f"{boxes[flat][0].tolist()}")


DETECTION = register(Task(
    "detection", "boxes and classes of the objects in each image", "ap", "per-image AP",
    "per-image AP: each image's COCO AP@[.5:.95], averaged over the images with objects",
    imported("tlbench.tasks.detection.model:Detector"), _step, imported("tlbench.tasks.detection.metrics:evaluate"),
    {"map": "COCO mAP@[.5:.95] of the split (torchmetrics, faster-coco-eval)", "map50": "COCO mAP at IoU 0.5"},
    augment=partial(imported("tlbench.tasks.augment:JointAugmenter"), kind="boxes"), example=_example,
    check_targets=check_targets))
