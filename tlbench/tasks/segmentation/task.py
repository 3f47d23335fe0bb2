"""Semantic segmentation: a class per pixel (``Split.targets``: ``N×H×W`` int64, 255 unlabelled).
The model is torchvision's LR-ASPP head on two levels of the backbone's pyramid, upsampled to the
image (:mod:`.model`); the loss is per-pixel cross-entropy; the score is each image's mean IoU,
with the split's mean IoU and pixel accuracy (:mod:`.metrics`)."""
from __future__ import annotations

from functools import partial

from tlbench.tasks.task import Task, imported, register


def _step(model, train):
    from tlbench.contract.step import PixelCrossEntropyStep

    return PixelCrossEntropyStep(model)


def _example(n: int, size: int, num_classes: int):
    """``n`` random images, each a square of one class (1, 2, ..., ``num_classes - 1`` in turn) on
    background 0, its corner pixel unlabelled (255)."""
    import torch

    from tlbench.modalities.dense import IGNORE, segmentation_split
    from tlbench.modalities.modality import get

    masks = torch.zeros(n, size, size, dtype=torch.int64)
    for i, mask in enumerate(masks):
        mask[size // 4:3 * size // 4, size // 4:3 * size // 4] = 1 + i % (num_classes - 1)
        mask[0, 0] = IGNORE
    return segmentation_split(get("image").example(n, size), masks, num_classes)


def check_targets(split, num_classes: int) -> None:
    """``targets``: integer ``N×H×W``, the images' height and width, values in ``[0, num_classes)`` or 255."""
    import torch

    from tlbench.modalities.dense import IGNORE

    targets, images = split.targets, split.inputs
    if not isinstance(targets, torch.Tensor) or targets.ndim != 3 or len(targets) != len(split):
        raise ValueError(f"segmentation targets must be a N×H×W tensor with N = {len(split)} examples; got "
                         f"{tuple(getattr(targets, 'shape', ())) or type(targets).__name__}")
    if isinstance(images, torch.Tensor) and tuple(targets.shape[1:]) != tuple(images.shape[-2:]):
        raise ValueError(f"segmentation targets are {tuple(targets.shape[1:])} per image, the images "
                         f"{tuple(images.shape[-2:])}: give a class for every pixel")
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise ValueError(f"segmentation targets must be integer classes, got {targets.dtype}")
    wrong = (targets < 0) | ((targets >= num_classes) & (targets != IGNORE))
    if wrong.any():
        raise ValueError(f"segmentation targets: values must lie in [0, {num_classes}) or be {IGNORE} (unlabelled), "
                         f"found {sorted(targets[wrong].unique().tolist())[:5]}")


SEGMENTATION = register(Task(
    "segmentation", "a class for every pixel of each image", "iou", "per-image IoU",
    "per-image IoU: each image's mean IoU over the classes of its ground truth, averaged over the images",
    imported("tlbench.tasks.segmentation.model:Segmenter"), _step,
    imported("tlbench.tasks.segmentation.metrics:evaluate"),
    {"miou": "mean IoU of the split (per class over all its pixels, then averaged; torchmetrics)",
     "pixel_acc": "the share of labelled pixels whose class is right"},
    augment=partial(imported("tlbench.tasks.augment:JointAugmenter"), kind="masks"), example=_example,
    check_targets=check_targets))
