"""Deprecated forms of the public API, kept working for one minor version with a warning.

Each shim names the version that removes it (see ``CHANGELOG.md``).
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import nn

from tlbench.contract.step import StepOutput, TrainStep

__all__ = ["LossFunctionStep", "train_loop_step"]


class LossFunctionStep(TrainStep):
    """0.2's ``loss_of(inputs, labels, step) -> (loss, examples)`` as a :class:`TrainStep` (the
    loss recorded as the curve's only component)."""

    def __init__(self, model: nn.Module, loss_of: Callable[[object, torch.Tensor, int], tuple[torch.Tensor, int]]):
        super().__init__(model)
        self.loss_of = loss_of
        self.step = 0

    def advance(self, step: int, steps: int) -> None:
        self.step = step

    def forward(self, inputs, labels: torch.Tensor) -> StepOutput:
        loss, examples = self.loss_of(inputs, labels, self.step)
        return StepOutput(loss, int(examples))


def train_loop_step(step_module, split, loss_of) -> tuple[TrainStep, str]:
    """``CellContext.train_loop``'s ``(step_module, split)`` from what it was given: a
    :class:`TrainStep` as is; 0.2's ``train_loop(model, opt, schedule, steps, loss_of[, split])``
    wrapped in a :class:`LossFunctionStep` with a ``DeprecationWarning`` (removed in 0.4.0)."""
    if callable(split) and not isinstance(split, str):  # loss_of given in 0.2's fifth place
        loss_of, split = split, loss_of if isinstance(loss_of, str) else "train"
    if loss_of is None:
        if not isinstance(step_module, TrainStep):
            raise TypeError("CellContext.train_loop: pass a tlbench.TrainStep (e.g. tlbench.ClassificationStep("
                            f"model), or your own subclass), not {type(step_module).__name__}")
        return step_module, split
    warnings.warn("CellContext.train_loop(model, opt, schedule, steps, loss_of) is deprecated since tlbench 0.3.0 "
                  "and is removed in 0.4.0: pass a tlbench.TrainStep whose forward(inputs, labels) returns "
                  "tlbench.StepOutput(loss, examples)", DeprecationWarning, stacklevel=3)
    return LossFunctionStep(step_module, loss_of), split
