"""The values that cross the plugin contract: a plugin's :class:`Options`, a :class:`Split` of
examples, a :class:`LoadedDataset`, a strategy's :class:`Outcome` and its declared :data:`Role`.

Plain data, importing nothing else of tlbench: the training loops, the planner and the plugin
records (:mod:`tlbench.plugins.records`) all build on these. Importing it does not import torch
(``tlbench list`` reads every plugin's options without it); :func:`take` imports it when called.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # pragma: no cover
    import torch


class Options(BaseModel):
    """Base class of every plugin's options: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: options added after cells were stored, left out of a cell's configuration (and so of its id)
    #: at these values, so that a user's store keeps its finished cells
    omitted_at: ClassVar[dict[str, Any]] = {}

    def as_config(self) -> dict:
        """The options as JSON data, less those at their :attr:`omitted_at` value: what a cell id hashes."""
        return self.model_dump(mode="json", exclude={k for k, v in self.omitted_at.items() if getattr(self, k) == v})


#: the segmentation target of an unlabelled pixel (``Split.targets``): no loss, no score
UNLABELLED = 255


@dataclass(frozen=True)
class Split:
    """One labelled (or unlabelled: labels -1) set of examples.

    ``inputs`` is raw data as a dataset gives it (images: a uint8 ``N×C×H×W`` tensor; text: a
    ``list[str]``) or encoded data as a backbone's encoder makes it (a tensor or a dict of tensors,
    e.g. ``input_ids`` and ``attention_mask``). Tensors let the engine put a whole small dataset on
    the GPU once and slice batches there; lists stay where they are.

    ``labels`` holds one class per example: what a classifier learns, and for every task what the
    splits and label budgets are stratified by. ``targets``, for a task whose examples have more
    than one class (:mod:`tlbench.tasks`), is a tensor whose rows are the examples: object
    detection ``N×M×5`` float ``(class, x1, y1, x2, y2)`` in the image's pixels, padded with rows
    of class -1; semantic segmentation ``N×H×W`` int64, a class per pixel, 255 where unlabelled.
    Its ``labels`` are then each example's stratum (its largest object's class; its most frequent
    class other than 0).
    """

    inputs: torch.Tensor | dict[str, torch.Tensor] | list
    labels: torch.Tensor
    targets: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def truth(self) -> torch.Tensor:
        """What a model is trained and scored against: ``targets``, else ``labels``."""
        return self.labels if self.targets is None else self.targets

    def subset(self, index: torch.Tensor) -> "Split":
        return Split(take(self.inputs, index), self.labels[index],
                     None if self.targets is None else self.targets[index])

    def to(self, device: torch.device | str) -> "Split":
        return Split(move(self.inputs, device), self.labels.to(device),
                     None if self.targets is None else self.targets.to(device, non_blocking=True))

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False):
        """``(inputs, truth)`` slices of the split where it lies (a shuffled order drawn from
        ``generator``); the last, smaller batch is kept unless ``drop_last``."""
        import torch

        n = len(self)
        order = torch.randperm(n, generator=generator).to(self.labels.device) if shuffle else None
        end = n - n % batch_size if drop_last else n
        truth = self.truth
        for start in range(0, end, batch_size):
            index = order[start:start + batch_size] if shuffle else slice(start, start + batch_size)
            yield take(self.inputs, index), truth[index]


def take(inputs, index):
    """Rows ``index`` of a tensor, of every tensor in a dict, or of a list."""
    if isinstance(inputs, dict):
        return {k: v[index] for k, v in inputs.items()}
    if isinstance(inputs, list):
        import torch

        positions = range(len(inputs))[index] if isinstance(index, slice) else torch.as_tensor(index).tolist()
        return [inputs[i] for i in positions]
    return inputs[index]


def move(inputs, device):
    """``inputs`` on ``device`` (a list of raw examples stays as it is)."""
    if isinstance(inputs, dict):
        return {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
    if isinstance(inputs, list):
        return inputs
    return inputs.to(device, non_blocking=True)


def shape_of(inputs):
    """The shape of a tensor, of every tensor in a dict (by key), or of a list (its length)."""
    if isinstance(inputs, dict):
        return {k: tuple(v.shape) for k, v in inputs.items()}
    if isinstance(inputs, list):
        return (len(inputs),)
    return tuple(inputs.shape)


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


@dataclass
class Outcome:
    """What a strategy's ``run`` returns. The core turns predictions into metrics, so every
    strategy is scored by the same code.

    ``logits`` maps each split name in ``ctx.eval_splits`` to a ``N×num_classes`` tensor.
    ``extra`` holds further numbers the strategy measured (stored with the metrics).
    """

    logits: dict[str, torch.Tensor]
    trainable_params: int
    total_params: int
    extra: dict[str, float] = field(default_factory=dict)


#: What a strategy is, for tables, ranks and figures (never inferred from a display label):
#: ``transfer`` uses a pretrained backbone on the task's labels; ``baseline`` is a reference without
#: transfer (training from scratch); ``adaptation`` also uses unlabelled target-domain data;
#: ``oracle`` uses labels no fair method may see (target labels): shown, never ranked or bolded.
Role = Literal["transfer", "baseline", "adaptation", "oracle"]
