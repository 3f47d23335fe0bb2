"""Detection's scores, from torchmetrics' COCO evaluation (``MeanAveragePrecision``, backend
faster-coco-eval): COCO mAP@[.5:.95] and mAP@.5 of the whole split, and each image's own
AP@[.5:.95] as the per-example score the statistics resample.

An image's AP is the COCO mAP of that image alone (the mean over the classes present in its
ground truth of the area under each class's precision–recall curve, averaged over IoU thresholds
.50:.05:.95). Its mean over images is the task's score ``test_ap``; it is not the split's mAP (which
pools every image's detections per class before ranking them) but moves with it, and unlike mAP it
is a mean over examples, so that its intervals and paired tests follow the same law as accuracy's.
Images without any object have no AP: they count in the split's mAP (their detections are false
positives there) and are left out of the per-image evidence.
"""
from __future__ import annotations

import numpy as np
import torch

from tlbench.contract.evidence import ExampleScores
from tlbench.tasks.task import Evaluation

BACKEND = "faster_coco_eval"


def as_dicts(detections: torch.Tensor, targets: torch.Tensor) -> tuple[list[dict], list[dict]]:
    """torchmetrics' lists of prediction and target dicts from the padded tensors: detections
    ``N×K×6`` ``(x1, y1, x2, y2, score, class)``, targets ``N×M×5`` ``(class, x1, y1, x2, y2)``;
    rows of class -1 are padding."""
    preds, truths = [], []
    for found, truth in zip(detections.float().cpu(), targets.float().cpu()):
        found, truth = found[found[:, 5] >= 0], truth[truth[:, 0] >= 0]
        preds.append({"boxes": found[:, :4], "scores": found[:, 4], "labels": found[:, 5].long()})
        truths.append({"boxes": truth[:, 1:], "labels": truth[:, 0].long()})
    return preds, truths


def mean_average_precision(preds: list[dict], truths: list[dict]) -> dict[str, float]:
    """COCO ``map`` (@[.5:.95]) and ``map50`` of the images together (-1: no object at all)."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend=BACKEND)
    metric.update(preds, truths)
    result = metric.compute()
    return {"map": float(result["map"]), "map50": float(result["map_50"])}


def evaluate(detections: torch.Tensor, split, num_classes: int) -> Evaluation:
    """The mean per-image AP (the score), its evidence (the images with objects) and the split's
    COCO mAP and mAP@.5."""
    preds, truths = as_dicts(detections, split.truth)
    whole = mean_average_precision(preds, truths)
    index = [i for i, truth in enumerate(truths) if len(truth["labels"])]
    per_image = np.array([mean_average_precision([preds[i]], [truths[i]])["map"] for i in index], dtype=np.float32)
    evidence = ExampleScores(np.asarray(index, dtype=np.int32), per_image)
    return Evaluation(float(per_image.mean()) if len(per_image) else 0.0, evidence, whole)
