"""L2-SP's training step (torch): imported by :func:`tlbench.builtins.strategies.l2sp.run`."""
from __future__ import annotations

import torch
from torch import nn

from tlbench.contract.step import StepOutput, TrainStep


class L2SPStep(TrainStep):
    """Cross-entropy of the classifier plus the L2-SP penalty; the starting point is a detached
    copy of the backbone's trainable weights, taken when the step is made."""

    def __init__(self, classifier: nn.Module, alpha: float, beta: float, label_smoothing: float = 0.0):
        super().__init__(classifier)
        self.alpha, self.beta, self.label_smoothing = alpha, beta, label_smoothing
        self.backbone_weights = [p for p in classifier.backbone.parameters() if p.requires_grad]
        self.starting_point = [p.detach().clone() for p in self.backbone_weights]
        self.head_weights = [p for p in classifier.head.parameters() if p.ndim > 1]

    def penalty(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(squared distance of the backbone from its start, squared norm of the head's weights)."""
        distance = sum(((p - p0) ** 2).sum() for p, p0 in zip(self.backbone_weights, self.starting_point))
        norm = sum((w ** 2).sum() for w in self.head_weights)
        return distance, norm

    def forward(self, inputs, labels: torch.Tensor) -> StepOutput:
        ce = nn.functional.cross_entropy(self.model(inputs), labels, label_smoothing=self.label_smoothing)
        distance, norm = self.penalty()
        regulariser = 0.5 * (self.alpha * distance + self.beta * norm)
        return StepOutput(ce + regulariser, len(labels), {"cross_entropy": ce, "l2sp": regulariser})
