"""Object detection: boxes and classes per image (``Split.targets``: ``N×M×5`` ``(class, x1, y1, x2,
y2)`` in the image's pixels, padding rows of class -1). The model is torchvision's FCOS on a feature
pyramid network over the backbone's pyramid (:mod:`.model`); the loss is the detector's own; the
score is each image's COCO AP, with the split's COCO mAP and mAP@.5 (:mod:`.metrics`)."""
from __future__ import annotations

from tlbench.tasks.task import Task, register


def _model(backbone, num_classes: int):
    from tlbench.tasks.detection.model import Detector

    return Detector(backbone, num_classes)


def _step(model, train):
    from tlbench.contract.step import OwnLossStep

    return OwnLossStep(model)


def _augment(policy: str, seed: int, device):
    from tlbench.tasks.augment import JointAugmenter

    return JointAugmenter(policy, seed, "boxes")


def _evaluate(detections, split, num_classes: int):
    from tlbench.tasks.detection.metrics import evaluate

    return evaluate(detections, split, num_classes)


DETECTION = register(Task(
    "detection", "boxes and classes of the objects in each image", "ap", "per-image AP",
    "per-image AP: each image's COCO AP@[.5:.95], averaged over the images with objects",
    _model, _step, _evaluate,
    {"map": "COCO mAP@[.5:.95] of the split (torchmetrics, faster-coco-eval)", "map50": "COCO mAP at IoU 0.5"}, augment=_augment))
