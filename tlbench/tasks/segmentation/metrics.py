"""Segmentation's scores, from torchmetrics: the split's mean IoU (per class over every pixel of
the split, then averaged over the classes) and pixel accuracy, and each image's own mean IoU as
the per-example score the statistics resample.

An image's IoU is the mean, over the classes of its ground truth (background included), of that
class's intersection over union in the image; unlabelled pixels (255) count nowhere. A class
predicted where the image has none is not a term of its own: its pixels are taken from the image's
classes and lower their IoU (averaging a zero for every such class would rank a model that predicts
background everywhere above one that finds the objects but sometimes names them wrongly). Its mean
over images is the task's score ``test_iou``: a mean over examples, so that its intervals and paired
tests follow the same law as accuracy's; the split's ``miou`` is the number segmentation papers
report.
"""
from __future__ import annotations

import numpy as np
import torch

from tlbench.contract.evidence import ExampleScores
from tlbench.modalities.dense import IGNORE
from tlbench.tasks.task import Evaluation


def image_iou(predicted: torch.Tensor, truth: torch.Tensor, num_classes: int) -> float:
    """The mean IoU of one ``H×W`` prediction against its truth, over the truth's classes (1 for an
    image without a labelled pixel)."""
    from torchmetrics.functional.classification import multiclass_jaccard_index

    labelled = truth != IGNORE
    present = torch.zeros(num_classes, dtype=torch.bool)
    present[truth[labelled].unique()] = True
    per_class = multiclass_jaccard_index(predicted[None], truth[None], num_classes, average="none",
                                         ignore_index=IGNORE)
    return float(per_class[present].mean()) if present.any() else 1.0


def evaluate(logits: torch.Tensor, split, num_classes: int) -> Evaluation:
    """The mean per-image IoU (the score), its evidence and the split's ``miou`` and ``pixel_acc``."""
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_jaccard_index

    predicted, truth = logits.argmax(1).cpu(), split.truth.cpu().long()
    per_image = np.array([image_iou(p, t, num_classes) for p, t in zip(predicted, truth)], dtype=np.float32)
    metrics = {"miou": float(multiclass_jaccard_index(predicted, truth, num_classes, average="macro",
                                                      ignore_index=IGNORE)),
               "pixel_acc": float(multiclass_accuracy(predicted, truth, num_classes, average="micro",
                                                      ignore_index=IGNORE))}
    return Evaluation(float(per_image.mean()), ExampleScores(np.arange(len(per_image), dtype=np.int32), per_image),
                      metrics)
