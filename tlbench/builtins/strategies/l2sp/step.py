"""L2-SP's training step (torch): imported by :func:`tlbench.builtins.strategies.l2sp.run`."""
from __future__ import annotations

import torch
from torch import nn

from tlbench.contract.step import StepOutput, TrainStep


class L2SPStep(TrainStep):
    """The task's own step (``task_step``: cross-entropy for classification, the detector's loss, ...)
    plus the L2-SP penalty; the starting point is a detached copy of the backbone's trainable
    weights, taken when the step is made."""

    def __init__(self, task_step: TrainStep, alpha: float, beta: float):
        super().__init__(task_step.model)
        self.task_step, self.alpha, self.beta = task_step, alpha, beta
        model = task_step.model
        self.backbone_weights = [p for p in model.backbone.parameters() if p.requires_grad]
        self.starting_point = [p.detach().clone() for p in self.backbone_weights]
        self.head_weights = [p for p in model.head.parameters() if p.ndim > 1]

    def penalty(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(squared distance of the backbone from its start, squared norm of the head's weights)."""
        distance = sum(((p - p0) ** 2).sum() for p, p0 in zip(self.backbone_weights, self.starting_point))
        norm = sum((w ** 2).sum() for w in self.head_weights)
        return distance, norm

    def forward(self, inputs, truth: torch.Tensor) -> StepOutput:
        out = self.task_step(inputs, truth)
        distance, norm = self.penalty()
        regulariser = 0.5 * (self.alpha * distance + self.beta * norm)
        return StepOutput(out.loss + regulariser, out.examples, {**out.components, "l2sp": regulariser})
