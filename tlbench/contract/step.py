"""The training step as a module: one place for the forward pass, the loss and ``torch.compile``.

A step maps ``(inputs, labels)`` to a :class:`StepOutput`: the loss to minimise, how many examples
it trained on (for throughput) and its named components (DANN's class and domain losses), which the
training loop records as a curve for trackers. The loop evaluates ``step.model`` on the selection
split now and then: its first ``num_classes`` outputs are the class logits (a model may append
others after them, as DANN's domain logit). ``CellContext.train_loop`` runs any step; with
``[train] compile = true`` it runs ``torch.compile(step)`` once per cell. What changes from step to
step on the Python side (DANN's reversal weight) is set in :meth:`TrainStep.advance`, outside the
compiled graph, so that the graph is traced once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from tlbench.contract.values import UNLABELLED


@dataclass
class StepOutput:
    loss: torch.Tensor
    examples: int
    components: dict[str, torch.Tensor] = field(default_factory=dict)


class TrainStep(nn.Module):
    """Base class of training steps: ``forward(inputs, labels) -> StepOutput``.

    ``model`` holds every trained module (the loop sets its train mode)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def advance(self, step: int, steps: int) -> None:
        """Called before each step, uncompiled: update per-step state (schedules) in place."""

    def forward(self, inputs, labels: torch.Tensor) -> StepOutput:  # pragma: no cover
        raise NotImplementedError


class ClassificationStep(TrainStep):
    """Cross-entropy of ``model(inputs)`` against the labels (with ``label_smoothing``, as
    ``torch.nn.functional.cross_entropy`` takes it): supervised fine-tuning."""

    def __init__(self, model: nn.Module, label_smoothing: float = 0.0):
        super().__init__(model)
        self.label_smoothing = label_smoothing

    def forward(self, inputs, labels: torch.Tensor) -> StepOutput:
        loss = nn.functional.cross_entropy(self.model(inputs), labels, label_smoothing=self.label_smoothing)
        return StepOutput(loss, len(labels), {"cross_entropy": loss})


@dataclass(frozen=True)
class ModelLoss:
    """A loss a model computes itself: ``total``, what to backpropagate, is the sum of ``parts``,
    its named components (a detector's classification and box losses)."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor]


class OwnLossStep(TrainStep):
    """The loss ``model(inputs, truth)`` computes itself and returns as a :class:`ModelLoss`:
    a detector's (torchvision's detection models compute theirs in training mode)."""

    def forward(self, inputs, truth: torch.Tensor) -> StepOutput:
        loss = self.model(inputs, truth)
        return StepOutput(loss.total, len(truth), loss.parts)


class PixelCrossEntropyStep(TrainStep):
    """Cross-entropy of ``model(inputs)`` (``B×C×H×W`` logits) against a class per pixel, pixels of
    class ``ignore`` left out: semantic segmentation."""

    def __init__(self, model: nn.Module, ignore: int = UNLABELLED):
        super().__init__(model)
        self.ignore = ignore

    def forward(self, inputs, truth: torch.Tensor) -> StepOutput:
        loss = nn.functional.cross_entropy(self.model(inputs), truth.long(), ignore_index=self.ignore)
        return StepOutput(loss, len(truth), {"cross_entropy": loss})
