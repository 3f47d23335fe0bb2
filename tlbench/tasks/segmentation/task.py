"""Semantic segmentation: a class per pixel (``Split.targets``: ``N×H×W`` int64, 255 unlabelled).
The model is torchvision's LR-ASPP head on two levels of the backbone's pyramid, upsampled to the
image (:mod:`.model`); the loss is per-pixel cross-entropy; the score is each image's mean IoU,
with the split's mean IoU and pixel accuracy (:mod:`.metrics`)."""
from __future__ import annotations

from tlbench.tasks.task import Task, register


def _model(backbone, num_classes: int):
    from tlbench.tasks.segmentation.model import Segmenter

    return Segmenter(backbone, num_classes)


def _step(model, train):
    from tlbench.contract.step import PixelCrossEntropyStep

    return PixelCrossEntropyStep(model)


def _augment(policy: str, seed: int, device):
    from tlbench.tasks.augment import JointAugmenter

    return JointAugmenter(policy, seed, "masks")


def _evaluate(logits, split, num_classes: int):
    from tlbench.tasks.segmentation.metrics import evaluate

    return evaluate(logits, split, num_classes)


SEGMENTATION = register(Task(
    "segmentation", "a class for every pixel of each image", "iou", "per-image IoU",
    "per-image IoU: each image's mean IoU over the classes it or its prediction holds, averaged over the images",
    _model, _step, _evaluate,
    {"miou": "mean IoU of the split (per class over all its pixels, then averaged; torchmetrics)",
     "pixel_acc": "the share of labelled pixels whose class is right"}, augment=_augment))
