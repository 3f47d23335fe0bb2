"""The public record types that plugins yield and the core consumes.

Every plugin hook returns a list of these small frozen records. A record names the thing,
gives one line of help, the pydantic model of its options (each field with a description,
shown by ``tlbench list``) and a factory. The core never imports a concrete plugin.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.context import CellContext


class Options(BaseModel):
    """Base class of every plugin's options: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Split:
    """One labelled (or unlabelled: labels -1) set of examples, held as tensors.

    ``inputs`` is a tensor whose first axis indexes examples (images: uint8 ``N×C×H×W``)
    or a dict of such tensors (text: ``input_ids``, ``attention_mask``). Keeping the data as
    tensors lets the engine put a whole small dataset on the GPU once and slice batches there.
    """

    inputs: torch.Tensor | dict[str, torch.Tensor]
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> "Split":
        return Split(take(self.inputs, index), self.labels[index])

    def to(self, device: torch.device | str) -> "Split":
        return Split(move(self.inputs, device), self.labels.to(device))


def take(inputs, index):
    """Rows ``index`` of a tensor or of every tensor in a dict."""
    if isinstance(inputs, dict):
        return {k: v[index] for k, v in inputs.items()}
    return inputs[index]


def move(inputs, device):
    if isinstance(inputs, dict):
        return {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
    return inputs.to(device, non_blocking=True)


@dataclass(frozen=True)
class LoadedDataset:
    """What a dataset plugin's ``load`` returns.

    ``source`` maps split names to data: any of ``{"all"}``, ``{"train", "test"}`` or
    ``{"train", "val", "test"}``; the core carves the missing splits with a fixed seed,
    stratified by class. ``target`` (same shape) is the shifted domain of a domain-adaptation
    pair; strategies only ever see its training labels when they are an oracle.
    """

    classes: list[str]
    source: dict[str, Split]
    target: dict[str, Split] | None = None


@dataclass(frozen=True)
class DatasetPlugin:
    name: str
    help: str
    options: type[Options]
    load: Callable[[Any], LoadedDataset]
    modality: str = "image"
    has_target_domain: bool = False


@dataclass(frozen=True)
class BackbonePlugin:
    """``build(options, pretrained)`` returns a :class:`tlbench.backbone.Backbone`.

    ``pretrained=False`` must give the same architecture with random initialisation: that is
    what the ``scratch`` strategy trains.
    """

    name: str
    help: str
    options: type[Options]
    build: Callable[[Any, bool], Any]
    modality: str = "image"


@dataclass
class Outcome:
    """What a strategy's ``run`` returns. The core turns predictions into metrics, so every
    strategy is scored by the same code.

    ``logits`` maps each split name in ``ctx.eval_splits`` to a ``N×num_classes`` tensor.
    ``select_on`` names the split whose accuracy is ``val_acc``, the score that hyper-parameter
    selection uses: ``"val"`` (source validation), or ``"target_val"`` for a strategy trained on
    target labels (an oracle).
    """

    logits: dict[str, torch.Tensor]
    trainable_params: int
    total_params: int
    extra: dict[str, float] = field(default_factory=dict)
    select_on: str = "val"


@dataclass(frozen=True)
class StrategyPlugin:
    """``run(ctx, options)`` trains on ``ctx`` and returns an :class:`Outcome`.

    A strategy with ``needs_target_domain`` is skipped, with the reason recorded, on datasets
    that have no target domain. ``grid`` gives default sweeps for options a suite leaves out
    (e.g. ``{"lr": [3e-4, 1e-3]}``); the variant with the best validation accuracy is reported.
    """

    name: str
    help: str
    options: type[Options]
    run: Callable[["CellContext", Any], Outcome]
    needs_target_domain: bool = False
    grid: dict[str, list] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutorPlugin:
    """``run(cells, run_cell, on_record)`` calls ``run_cell(cell) -> record`` for every cell
    (anywhere it likes) and ``on_record(cell, record)`` in this process as soon as each is
    finished (the store commits it there and then). Ctrl-C propagates as KeyboardInterrupt."""

    name: str
    help: str
    run: Callable[..., None]
