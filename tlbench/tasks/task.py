"""Declared tasks: what a dataset poses (``DatasetPlugin.task``) and a strategy can train
(``StrategyPlugin.tasks``).

A :class:`Task` says how a model is built on a backbone for it (the head), how a batch's loss is
computed (the training step), and how predictions are scored: the task's *score* (a number per
example whose mean the record stores as ``val_<score>`` / ``test_<score>``, so that intervals,
paired tests with Holm, aggregates, selection and verdicts work for every task alike), the
per-example evidence kept, and further metrics of the whole split (COCO mAP, mean IoU).
``classification``, ``detection`` and ``segmentation`` are built in (declared on first use, so
that ``tlbench list`` imports no torch); a plugin adds another with :func:`register`. A strategy
that does not list a dataset's task is skipped on it with the reason, as a modality mismatch is
(:func:`mismatch`).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tlbench.contract.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from tlbench.contract.backbone import Backbone, TaskModel
    from tlbench.contract.evidence import ExampleScores, SplitEvidence
    from tlbench.contract.step import TrainStep
    from tlbench.contract.values import Split

__all__ = ["BUILT_IN", "Evaluation", "Task", "get", "imported", "mismatch", "in_order", "register", "scored", "scores"]


@dataclass(frozen=True)
class Evaluation:
    """A model's outputs on one split, scored: ``score`` is the mean of ``evidence``'s per-example
    values (accuracy; mean per-image AP; mean per-image IoU); ``metrics`` are numbers of the whole
    split, by name without the split (``{"map": 0.41, "map50": 0.72}``)."""

    score: float
    evidence: SplitEvidence | ExampleScores
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """``model(backbone, num_classes)``: the :class:`~tlbench.contract.backbone.TaskModel` that
    ``ctx.classifier()`` returns (its ``head`` new). ``step(model, train_options)``: the
    :class:`~tlbench.contract.step.TrainStep` that ``ctx.fit`` trains with by default; it gets the
    batch's ``Split.truth`` (labels, or the task's targets). ``evaluate(outputs, split,
    num_classes)``: the :class:`Evaluation` of the model's outputs on ``split`` (every example, in
    order; outputs as the model returns them in eval mode, concatenated over batches).
    ``score``: the record's ``val_<score>`` / ``test_<score>``, called ``score_label`` in tables and
    sentences (``"accuracy"``) and explained by ``score_help``; ``metrics``: the names and meaning
    of :attr:`Evaluation.metrics`, stored for the test split as ``test_<name>``.
    ``selection(model, split, batch_size, autocast, num_classes)``, if given, is a faster way to the
    selection split's score during training (classification counts on the device).
    ``augment(policy, seed, device)``, if given, returns ``(images, truth) -> (images, truth)`` for
    a ``[train] augment`` policy, moving the targets with the images; without it the training loop
    augments images alone (right when the truth is one label per example).
    ``example(n, size, num_classes)``, if given, is a :class:`Split` of ``n`` raw uint8 images
    (``size`` pixels square) as a dataset of the task gives it, targets included: what the
    conformance kit trains and scores (:func:`tlbench.testing.check_task_plugin`).
    ``check_targets(split, num_classes)``, if given, raises a ValueError naming what is wrong with a
    split's ``targets`` (shape, rows, class range); the kit runs it on a dataset's splits."""

    name: str
    help: str
    score: str
    score_label: str
    score_help: str
    model: Callable[[Backbone, int], TaskModel]
    step: Callable[[Any, Any], TrainStep]
    evaluate: Callable[[Any, Split, int], Evaluation]
    metrics: dict[str, str] = field(default_factory=dict)
    selection: Callable[..., float] | None = None
    augment: Callable[[str, int, Any], Callable] | None = None
    example: Callable[[int, int, int], Split] | None = None
    check_targets: Callable[[Split, int], None] | None = None


#: built-in tasks and the module that declares each (imported on first use)
BUILT_IN = {"classification": "tlbench.tasks.classification", "detection": "tlbench.tasks.detection.task",
            "segmentation": "tlbench.tasks.segmentation.task"}
_TASKS: dict[str, Task] = {}


def imported(path: str) -> Callable:
    """The callable ``"module:name"``, imported at its first call: how a task module names its
    model, scores and steps without importing torch when it is declared (``tlbench list``)."""
    module, _, name = path.partition(":")

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)
    call.__qualname__ = call.__name__ = name
    return call


def register(task: Task) -> Task:
    """Declare ``task`` (a second one of the same name replaces the first)."""
    _TASKS[task.name] = task
    return task


def get(name: str, plugin: str = "") -> Task:
    """The task ``name``; a UserError naming ``plugin`` when none is declared under it."""
    if name not in _TASKS and name in BUILT_IN:
        importlib.import_module(BUILT_IN[name])
    try:
        return _TASKS[name]
    except KeyError:
        known = sorted(set(_TASKS) | set(BUILT_IN))
        raise UserError(f"{plugin + ': ' if plugin else ''}unknown task {name!r}; declared: {', '.join(known)} "
                        "(a plugin adds one: tlbench.tasks.task.register)") from None


def scores() -> list[str]:
    """The score of every task, built-in or registered (``acc``, ``ap``, ``iou``, ...)."""
    return sorted({get(name).score for name in set(BUILT_IN) | set(_TASKS)})


def in_order(names) -> list[str]:
    """Task names as reports and summaries list them: classification first, then by name."""
    return sorted(set(names), key=lambda name: (name != "classification", name))


def mismatch(strategy, dataset, strategy_label: str, dataset_label: str) -> str | None:
    """Why a strategy record cannot train on a dataset record (its ``tasks`` list neither the
    dataset's task nor ``"any"``), or None."""
    task = getattr(dataset, "task", "classification")
    tasks = getattr(strategy, "tasks", ("classification",))
    if task not in tasks and "any" not in tasks:
        return f"strategy {strategy_label!r} trains {', '.join(tasks)} and dataset {dataset_label!r} is {task}"
    return None


def scored(task: Task, outputs: dict[str, Any], splits: dict[str, Split], select_on: str, num_classes: int,
           indices: dict[str, Any] | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """A cell's metrics and evidence from its outputs on every evaluation split.

    ``val_<score>``: the score on ``select_on``; ``test_<score>``: on ``target_test`` (a shift pair)
    or ``test``, with the task's further metrics as ``test_<name>``; a shift pair adds
    ``source_test_<score>`` and ``target_val_<score>``; each out-of-distribution set ``ood:<set>``
    gives ``ood_<score>:<set>``. Evidence: every split :func:`tlbench.contract.evidence.kept` keeps,
    its rows numbered by ``indices[split]`` (the rows of the dataset's split a budget kept) or in order."""
    from dataclasses import replace

    import numpy as np

    from tlbench.contract.evidence import kept

    evaluations = {name: task.evaluate(out, splits[name], num_classes) for name, out in outputs.items()}
    shift = "target_test" in evaluations
    test = evaluations["target_test" if shift else "test"]
    metrics = {f"val_{task.score}": evaluations[select_on].score, f"test_{task.score}": test.score,
               **{f"test_{name}": value for name, value in test.metrics.items()}}
    if shift:
        metrics[f"source_test_{task.score}"] = evaluations["test"].score
        metrics[f"target_val_{task.score}"] = evaluations["target_val"].score
    metrics.update({f"ood_{task.score}:{name[4:]}": e.score for name, e in evaluations.items() if name.startswith("ood:")})
    indices = indices or {}
    evidence = {name: e.evidence if indices.get(name) is None
                else replace(e.evidence, index=np.asarray(indices[name]).astype(np.int32))
                for name, e in evaluations.items() if kept(name)}
    return metrics, evidence
