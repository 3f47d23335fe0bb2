"""A conformance kit for plugins, in the manner of scikit-learn's ``parametrize_with_checks``.

Run every check on one record (an ``AssertionError`` names the plugin and the check that failed)::

    from tlbench.testing import check_dataset_plugin
    check_dataset_plugin(my_dataset_record, options={"per_class": 10})

or get one pytest test per (plugin, check), with ids like ``digits-deterministic_load``::

    from tlbench.testing import parametrize_plugin_checks

    @parametrize_plugin_checks([my_dataset_record, (my_strategy_record, {"lr": 1e-2})])
    def test_conformance(record, check):
        check(record)

What is checked (the contracts of ``tlbench/plugins/hookspecs.py``):

* every plugin: every option has a description, and the defaults (with the ``options`` given for
  required fields) validate;
* datasets: two loads give equal data; the splits are ``all`` | ``train+test`` | ``train+val+test``
  (the target domain too, present exactly when ``has_target_domain``); labels are integers in
  ``[0, len(classes))``; images are uint8 ``N×C×H×W``, text a ``list[str]``; ``targets`` pass the
  dataset's task's ``check_targets`` (a classification dataset has none);
* backbones: ``pretrained=False`` gives the same architecture (state-dict keys and shapes);
  ``extract`` gives ``(B, feature_dim)`` finite features; ``blocks()`` is non-empty, holds only
  the model's own parameters and covers every trainable one (except a ``source_head``'s);
* strategies, run on a tiny CPU cell (the ``tiny_cnn`` backbone on 300 handwritten digits, a
  colour-inverted target domain when the strategy needs one): logits for exactly
  ``ctx.eval_splits``, each ``(N, num_classes)`` and finite; only the labels a strategy may use are
  read; the same seed gives the same logits; one that declares ``finetunes_pretrained`` predicts
  with a ``Classifier`` shaped as ``ctx.classifier(pretrained=True)``; one that declares detection,
  segmentation or ``ANY_TASK`` also returns outputs for every eval split of a tiny cell of that
  task (detection for ``ANY_TASK``);
* tasks (:class:`tlbench.Task`), on the ``tiny_cnn`` backbone and the task's ``example``: the model
  is a ``TaskModel`` with that backbone and a new ``head``; the default step's loss is finite and
  reaches the head; eval outputs concatenate over batches; ``evaluate``'s score is the mean of its
  evidence's values, whose rows index the split; its metrics are the declared ones;
* executors, on :func:`tiny_suite` at one torch thread: every cell comes back once, with the cell
  ids, statuses and metrics of the built-in ``inprocess`` executor; a cell whose worker dies runs
  once more on a fresh worker and is then recorded as failed (``session.failed``) while the other
  cells finish. An executor declares nothing about processes, so the rule is what it does: the
  kit's ``kit_dies`` strategy exits its process only where that is not the caller's, so an executor
  that runs cells in this process (``inprocess``) passes that check by running the cell;
* scorers, on simulated features (and source logits where ``needs_source_logits``; None
  otherwise): a finite float, the same for the same input, the same for the examples in another
  order, and better (by ``higher_is_better``) for class-separated features than for random ones.

How "reads only train labels" is tested: the strategy runs twice with the same seed, once on the
real data and once with every label it must not use (``val``, ``test``, ``target_*``; an oracle may
use ``target_train``) replaced by a *wrong but valid* label, ``(y + 1) % C``. The inputs are
unchanged, so a strategy that ignores those labels gives the same logits, best step and validation
curve; one that trains, selects or stops early on them gives different ones. The core's training
loop evaluates the selection split (``select_on``) with the labels it holds apart
(``CellContext.selection``, taken when the context is made), so its choice of the best step is
tested to read nothing but those: a loop that evaluated test or target labels would change too (a wrong-but-valid label cannot crash a
loss, so the leak shows in the result, not as an error). Watching label *access* instead (a tensor
subclass that raises) would flag the core's own evaluation code, which batches whole splits;
comparing outcomes tests exactly the promise that held-out labels do not influence predictions.
"""
from __future__ import annotations

import functools
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, Field
from torch import nn

import tlbench
from tlbench.train import data as data_mod
from tlbench.train import engine
from tlbench.contract.backbone import Backbone, TaskModel
from tlbench.train.context import CellContext, Features
from tlbench.plugins.executors import thread_env
from tlbench.modalities.modality import get as get_modality
from tlbench.plugins.records import (BackbonePlugin, DatasetPlugin, ExecutorPlugin, ScorerPlugin,
                                     StrategyPlugin)
from tlbench.contract.values import LoadedDataset, Options, Outcome, Split
from tlbench.train.strategies import seed_everything
from tlbench.tasks.task import Evaluation, Task, scored
from tlbench.tasks.task import get as get_task

__all__ = ["Check", "check_backbone_plugin", "check_dataset_plugin", "check_executor_plugin", "check_scorer_plugin",
           "check_strategy_plugin", "check_task_plugin", "plugin_checks", "parametrize_plugin_checks", "scorer_data",
           "tiny_context", "tiny_scenes", "tiny_suite"]

SPLIT_SHAPES = ({"all"}, {"train", "test"}, {"train", "val", "test"})


class Check:
    """One named check of one kind of plugin, with the options to build the record's options from
    (None for a record without options: a scorer)."""

    def __init__(self, function: Callable[[Any, Any], None], options: dict | None = None):
        self.function, self.options = function, dict(options or {})
        self.name = function.__name__.removeprefix("check_")

    def __call__(self, record: Any) -> None:
        options = _options(record, self.options, self.name) if hasattr(record, "options") else None
        try:
            self.function(record, options)
        except AssertionError as exc:
            raise AssertionError(f"{record.name}: check {self.name} failed: {exc}") from None
        except Exception as exc:
            raise AssertionError(f"{record.name}: check {self.name} raised {type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        return self.name


def _options(record, given: dict, check: str) -> BaseModel:
    try:
        return record.options(**given)
    except Exception as exc:
        raise AssertionError(f"{record.name}: check {check}: its options do not validate from "
                             f"{given or 'the defaults'}: {exc}; pass options={{...}} for required fields") from None


# ------------------------------------------------------------------------------------------------
# Every plugin


def check_options_documented(record, options: BaseModel) -> None:
    """Every option has a description (``tlbench list`` shows it) and the defaults validate."""
    undocumented = [name for name, info in record.options.model_fields.items() if not (info.description or "").strip()]
    assert not undocumented, f"options without a description (Field(..., description=...)): {undocumented}"
    given = options.model_dump()
    explicit = {name: info.get_default(call_default_factory=True) if not info.is_required() else given[name]
                for name, info in record.options.model_fields.items()}
    try:  # pydantic does not validate defaults unless they are passed in
        record.options.model_validate(explicit)
    except Exception as exc:
        raise AssertionError(f"a default value does not validate: {exc}") from None


# ------------------------------------------------------------------------------------------------
# Datasets


def check_deterministic_load(record: DatasetPlugin, options: BaseModel) -> None:
    """Two loads give the same classes and the same data, split by split."""
    first, second = record.load(options), record.load(options)
    assert first.classes == second.classes, "classes differ between two loads"
    for domain in ("source", "target"):
        a, b = getattr(first, domain), getattr(second, domain)
        assert (a is None) == (b is None), f"{domain} present in one load only"
        for name in a or {}:
            assert name in b, f"{domain} split {name!r} missing from the second load"
            assert _same_inputs(a[name].inputs, b[name].inputs), f"{domain} split {name!r}: inputs differ between loads"
            assert torch.equal(a[name].labels, b[name].labels), f"{domain} split {name!r}: labels differ between loads"


def _same_inputs(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_inputs(a[k], b[k]) for k in a)
    return list(a) == list(b)


def check_splits_shaped(record: DatasetPlugin, options: BaseModel) -> None:
    """Split names, label range and input layout as the dataset contract says; ``targets`` as the
    dataset's task says (its ``check_targets``: none for classification)."""
    loaded = record.load(options)
    assert isinstance(loaded, LoadedDataset), f"load returned {type(loaded).__name__}, not tlbench.LoadedDataset"
    classes = loaded.classes
    assert len(classes) >= 2 and all(isinstance(c, str) for c in classes), \
        f"classes must be a list of at least two str, got {classes!r}"
    assert len(set(classes)) == len(classes), "class names repeat"
    task = get_task(record.task, f"dataset plugin {record.name!r}")
    assert task.check_targets is not None, f"task {task.name!r} declares no check_targets (tlbench.Task)"
    assert (loaded.target is not None) == record.has_target_domain, \
        f"has_target_domain={record.has_target_domain} but target is {'set' if loaded.target else 'None'}"
    for domain in ("source", "target"):
        parts = getattr(loaded, domain)
        if parts is None:
            continue
        assert set(parts) in SPLIT_SHAPES, f"{domain} splits {sorted(parts)}: give all | train+test | train+val+test"
        for name, split in parts.items():
            where = f"{domain} split {name!r}"
            assert isinstance(split, Split), f"{where} is {type(split).__name__}, not tlbench.Split"
            labels = split.labels
            assert isinstance(labels, torch.Tensor) and labels.ndim == 1 and not labels.dtype.is_floating_point \
                and labels.dtype != torch.bool, f"{where}: labels must be a 1-D integer tensor"
            assert len(labels) > 0, f"{where} is empty"
            assert int(labels.min()) >= 0 and int(labels.max()) < len(classes), \
                f"{where}: labels must lie in [0, {len(classes)}), found [{int(labels.min())}, {int(labels.max())}]"
            try:
                task.check_targets(split, len(classes))
            except ValueError as exc:
                raise AssertionError(f"{where}: {exc} (dataset of task {task.name!r})") from None
            if record.modality == "image":
                x = split.inputs
                assert isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and x.ndim == 4 and x.shape[1] in (1, 3), \
                    f"{where}: images must be a uint8 N×C×H×W tensor (C = 1 or 3), got " \
                    f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}"
                assert len(x) == len(labels), f"{where}: {len(x)} images but {len(labels)} labels"
            elif record.modality == "text":
                x = split.inputs
                assert isinstance(x, list) and all(isinstance(s, str) for s in x), f"{where}: text must be a list[str]"
                assert len(x) == len(labels), f"{where}: {len(x)} texts but {len(labels)} labels"


# ------------------------------------------------------------------------------------------------
# Backbones


def _build(record: BackbonePlugin, options: BaseModel, pretrained: bool) -> Backbone:
    torch.manual_seed(0)
    model = record.build(options, pretrained)
    assert isinstance(model, Backbone), f"build returned {type(model).__name__}, not a tlbench.Backbone"
    return model


def check_same_architecture(record: BackbonePlugin, options: BaseModel) -> None:
    """``pretrained=False`` gives the same architecture: state-dict keys and shapes, feature_dim."""
    pretrained, scratch = _build(record, options, True), _build(record, options, False)
    a = {k: tuple(v.shape) for k, v in pretrained.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in scratch.state_dict().items()}
    assert a.keys() == b.keys(), f"state-dict keys differ: only pretrained {sorted(a.keys() - b.keys())[:5]}, " \
                                 f"only pretrained=False {sorted(b.keys() - a.keys())[:5]}"
    differ = [k for k in a if a[k] != b[k]]
    assert not differ, f"shapes differ for {differ[:5]}"
    assert pretrained.feature_dim == scratch.feature_dim, "feature_dim differs"


def raw_inputs(modality: str, n: int = 2, size: int = 32) -> Any:
    """A small raw batch as a dataset of that modality gives it (its declared example)."""
    return get_modality(modality).example(n, size)


def check_extract_shape(record: BackbonePlugin, options: BaseModel) -> None:
    """``extract`` maps a raw (encoded) batch of 2 to finite features ``(2, feature_dim)``; the
    built backbone declares its record's modality, whose join of two such batches gives
    ``(4, feature_dim)``."""
    model = _build(record, options, False).eval()
    assert isinstance(model.feature_dim, int) and model.feature_dim > 0, "feature_dim must be a positive int"
    assert model.modality == record.modality, \
        f"the built backbone's modality is {model.modality!r}, its record's {record.modality!r} (set the class " \
        "attribute modality, or subclass tlbench.ImageBackbone / tlbench.modalities.text.TextBackbone)"
    batch = raw_inputs(record.modality, 2, getattr(model, "input_size", 32) or 32)
    if record.encoder is not None:
        batch = record.encoder(options)(batch)
    with torch.no_grad():
        features = model.extract(batch)
        joined = get_modality(model.modality).join(model, batch, batch)
    assert isinstance(features, torch.Tensor) and tuple(features.shape) == (2, model.feature_dim), \
        f"extract gave {tuple(getattr(features, 'shape', ()))}, expected (2, {model.feature_dim})"
    assert torch.isfinite(features).all(), "extract gave non-finite features"
    assert tuple(joined.shape) == (4, model.feature_dim), \
        f"the {model.modality} join of two batches of 2 gave {tuple(joined.shape)}, expected (4, {model.feature_dim})"


def check_blocks_cover_parameters(record: BackbonePlugin, options: BaseModel) -> None:
    """``blocks()`` is a non-empty list of modules holding the model's own parameters and covering
    every trainable one (modules may group parameters, as timm's layer groups do)."""
    model = _build(record, options, False)
    blocks = model.blocks()
    assert isinstance(blocks, list) and blocks, "blocks() must return a non-empty list of modules"
    assert all(isinstance(b, nn.Module) for b in blocks), "blocks() must return nn.Module objects"
    own = {id(p) for p in model.parameters()}
    covered = {id(p) for b in blocks for p in b.parameters()}
    assert covered <= own, "blocks() hold parameters that are not the model's own (unfreezing them trains nothing)"
    head = {id(p) for p in model.source_head.parameters()} if model.source_head is not None else set()
    missing = [name for name, p in model.named_parameters()
               if p.requires_grad and id(p) not in covered and id(p) not in head]
    assert not missing, f"trainable parameters in no block (partial_finetune could never train them): {missing[:5]}"


# ------------------------------------------------------------------------------------------------
# Strategies


def tiny_digits(per_class: int = 30, image_size: int = 8, target: bool = False) -> LoadedDataset:
    """``per_class`` handwritten digits per class (300 by default); with ``target`` a second,
    disjoint set drawn in inverted colours as the target domain."""
    from tlbench.modalities.digits import CLASSES, handwritten
    from tlbench.modalities.image import to_uint8_rgb, upsample

    x8, labels = handwritten()
    index = np.concatenate([np.flatnonzero(labels == c)[:2 * per_class] for c in range(10)])
    x = to_uint8_rgb(upsample(x8[index], image_size))
    y = torch.from_numpy(labels[index])
    first = torch.as_tensor(np.concatenate([np.flatnonzero(y.numpy() == c)[:per_class] for c in range(10)]))
    second = torch.as_tensor(np.setdiff1d(np.arange(len(y)), first.numpy()))
    source = {"all": Split(x[first], y[first])}
    shifted = {"all": Split(255 - x[second], y[second])} if target else None
    return LoadedDataset(list(CLASSES), source, shifted)


def _cpu_fp32():
    """The precision context of the kit's CPU runs."""
    return engine.autocast(torch.device("cpu"), "fp32")


def _features_cache(splits: dict[str, Split], eval_batch_size: int):
    from tlbench.run.worker import extract_features  # the core's own extraction (with source logits)

    cache: dict[str, Features] = {}

    def get(make_backbone) -> Features:
        if "features" not in cache:
            cache["features"] = extract_features(make_backbone(), splits, eval_batch_size, _cpu_fp32)
        return cache["features"]
    return get


@functools.cache
def _installed():
    """The registry of the installed plugins, loaded once: what a tiny context's ``run_strategy`` runs."""
    from tlbench.plugins.host import load_registry
    return load_registry()


def tiny_context(loaded: LoadedDataset | None = None, build: Callable[[bool], Backbone] | None = None,
                 seed: int = 0, label_fraction: float = 1.0, epochs: int = 1, batch_size: int = 64,
                 target: bool = False, select_on: str = "val", task: str = "classification",
                 steps: int | None = None) -> CellContext:
    """A CPU :class:`CellContext` as the runner would make it: by default the ``tiny_cnn``
    backbone (width 4, 8×8 inputs) on :func:`tiny_digits`; ``task`` is ``loaded``'s task; ``steps``
    fixes the optimizer steps (else ``epochs``); ``ctx.run_strategy`` runs the installed strategies."""
    from tlbench.builtins.backbones import tiny_cnn
    from tlbench.contract.cells import Cell, Entry, TrainOptions
    from tlbench.run.worker import new_context

    loaded = loaded or tiny_digits(target=target)
    build = build or (lambda pretrained: tiny_cnn.build(tiny_cnn.TinyCNNOptions(width=4, input_size=8), pretrained))
    splits = data_mod.prepare(loaded)
    train = TrainOptions.model_validate({"epochs": epochs, "steps": steps, "batch_size": batch_size,
                                         "eval_batch_size": 256, "precision": "fp32"})
    plain = Entry("kit", "kit", Options(), {})
    cell = Cell("kit", plain, plain, plain, train, {}, seed, label_fraction)
    return new_context(cell, splits, num_classes=len(loaded.classes), device=torch.device("cpu"), build=build,
                       features_cache=_features_cache(splits, train.eval_batch_size), select_on=select_on,
                       strategies=lambda name: _installed().get("strategy", name), task=get_task(task))


def _allowed_labels(record: StrategyPlugin) -> set[str]:
    return {"train", "target_train"} if record.role == "oracle" else {"train"}


def _run(record: StrategyPlugin, options: BaseModel, seed: int = 0, poison: bool = False):
    """Run the strategy on a fresh tiny cell; with ``poison`` every label it may not use is
    replaced by a wrong but valid one, ``(y + 1) % C``."""
    ctx = tiny_context(tiny_digits(target=record.needs_target_domain), seed=seed, select_on=record.select_on)
    if poison:
        for name in set(ctx.data) - _allowed_labels(record):
            split = ctx.data[name]
            ctx.data[name] = Split(split.inputs, (split.labels + 1) % ctx.num_classes)
    seed_everything(seed)
    return ctx, record.run(ctx, options)


def check_logits_for_eval_splits(record: StrategyPlugin, options: BaseModel) -> None:
    """An Outcome with finite ``(N, num_classes)`` logits for exactly ``ctx.eval_splits``."""
    from tlbench.contract.values import Outcome

    ctx, outcome = _run(record, options)
    assert isinstance(outcome, Outcome), f"run returned {type(outcome).__name__}, not tlbench.Outcome"
    assert set(outcome.logits) == set(ctx.eval_splits), \
        f"logits for {sorted(outcome.logits)}, expected ctx.eval_splits {sorted(ctx.eval_splits)}"
    for name, logits in outcome.logits.items():
        expected = (len(ctx.data[name]), ctx.num_classes)
        assert isinstance(logits, torch.Tensor) and tuple(logits.shape) == expected, \
            f"logits[{name!r}] has shape {tuple(getattr(logits, 'shape', ()))}, expected {expected}"
        assert torch.isfinite(logits.float()).all(), f"logits[{name!r}] are not all finite"
    assert isinstance(outcome.trainable_params, int) and isinstance(outcome.total_params, int), \
        "trainable_params and total_params must be int"
    assert 0 <= outcome.trainable_params <= outcome.total_params, \
        f"trainable_params {outcome.trainable_params} must lie in [0, total_params {outcome.total_params}]"
    assert all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in outcome.extra.items()), \
        "extra must map str to numbers"


def _assert_same_logits(a: dict, b: dict, what: str) -> None:
    for name in a:
        if not torch.allclose(a[name].float(), b[name].float(), rtol=1e-4, atol=1e-5):
            diff = (a[name].float() - b[name].float()).abs().max().item()
            raise AssertionError(f"{what}: logits[{name!r}] differ (max |diff| {diff:.3g})")


def check_reads_only_train_labels(record: StrategyPlugin, options: BaseModel) -> None:
    """Held-out labels influence neither the logits nor the training loop's choice of its best
    step (see the module docstring for the method)."""
    clean_ctx, clean = _run(record, options)
    ctx, poisoned = _run(record, options, poison=True)
    hidden = sorted(set(ctx.data) - _allowed_labels(record))
    try:
        chosen = [(c.best_step, [p["val_acc"] for p in c.val_curve]) for c in (clean_ctx, ctx)]
        assert chosen[0] == chosen[1], f"the labels of {hidden} (which the strategy must not use) changed the " \
                                       f"best step or the validation curve: {chosen[0]} vs {chosen[1]}"
        _assert_same_logits(clean.logits, poisoned.logits,
                            f"the labels of {hidden} (which the strategy must not use) changed its predictions")
    except AssertionError:
        _, again = _run(record, options)  # a difference means a leak only if the strategy is deterministic
        _assert_same_logits(clean.logits, again.logits, "cannot tell: two runs with the same seed differ "
                            "(see check deterministic)")
        raise


def check_deterministic(record: StrategyPlugin, options: BaseModel) -> None:
    """The same seed gives the same logits."""
    _, first = _run(record, options)
    _, second = _run(record, options)
    _assert_same_logits(first.logits, second.logits, "two runs with the same seed")


def check_predicts_with_its_classifier(record: StrategyPlugin, options: BaseModel) -> None:
    """A strategy that declares ``finetunes_pretrained`` predicts with (a model holding) a
    :class:`tlbench.Classifier` of the same parameters and shapes as ``ctx.classifier(pretrained=True)``:
    what ``wise_ft`` interpolates and ``soup`` averages (:data:`APPLIES`: only such strategies get it)."""
    from tlbench.train.strategies import classifier_in

    ctx, _ = _run(record, options)
    assert ctx.deployed is not None, "declares finetunes_pretrained but predicted without ctx.predict(model)"
    shapes = lambda model: {k: v.shape for k, v in model.state_dict().items()}  # noqa: E731
    assert shapes(classifier_in(ctx.deployed[0])) == shapes(ctx.classifier(pretrained=True)), \
        "declares finetunes_pretrained but its Classifier's parameters differ from ctx.classifier(pretrained=True)'s"


#: the tasks whose declaration gets a strategy :func:`check_outputs_on_a_dense_cell`
DENSE_TASKS = {"detection", "segmentation", "any"}


def tiny_scenes(task: str = "detection", images: int = 24, size: int = 32) -> LoadedDataset:
    """``images`` scenes of ``size`` pixels, one or two of the digits 0-2 each: the built-in
    ``scene_detection`` or ``scene_segmentation`` dataset, by ``task``."""
    from tlbench.builtins.datasets import scenes

    load = scenes.load_detection if task == "detection" else scenes.load_segmentation
    return load(scenes.ScenesOptions(images=images, image_size=size, objects=(1, 2), classes=(0, 1, 2)))


def _tiny_cnn(size: int) -> Callable[[bool], Backbone]:
    from tlbench.builtins.backbones import tiny_cnn

    def build(pretrained: bool) -> Backbone:
        torch.manual_seed(0)
        return tiny_cnn.build(tiny_cnn.TinyCNNOptions(width=8, input_size=size), pretrained)
    return build


def check_outputs_on_a_dense_cell(record: StrategyPlugin, options: BaseModel) -> None:
    """A strategy that declares detection, segmentation or ``ANY_TASK`` (:data:`APPLIES`) trains on
    a tiny cell of that task (detection where it declares detection or any; ``tiny_cnn`` at 32 px
    on :func:`tiny_scenes`, 3 steps) and returns outputs for exactly ``ctx.eval_splits``, a row per
    example, that the task scores."""
    task = "detection" if {"detection", "any"} & set(record.tasks) else "segmentation"
    ctx = tiny_context(tiny_scenes(task), _tiny_cnn(32), batch_size=8, select_on=record.select_on, task=task,
                       steps=3)
    seed_everything(0)
    outcome = record.run(ctx, options)
    assert set(outcome.logits) == set(ctx.eval_splits), \
        f"outputs for {sorted(outcome.logits)} on a {task} cell, expected ctx.eval_splits {sorted(ctx.eval_splits)}"
    for name, out in outcome.logits.items():
        assert isinstance(out, torch.Tensor) and len(out) == len(ctx.data[name]), \
            f"outputs[{name!r}] on a {task} cell have {len(out)} rows for {len(ctx.data[name])} images"
    scored(ctx.task, outcome.logits, ctx.data, record.select_on, ctx.num_classes)


# ------------------------------------------------------------------------------------------------
# Executors

#: seconds an executor check waits for ``run`` to return before it fails (it never hangs the tests)
EXECUTOR_TIMEOUT = 300.0

#: the strategies of :func:`tiny_suite` by default: a few steps of fine-tuning and a linear probe
TINY_STRATEGIES = ({"plugin": "finetune", "lr": 3e-3}, {"plugin": "linear_probe", "C": 1.0})


def tiny_suite(strategies: Iterable[dict] = TINY_STRATEGIES, seeds: Iterable[int] = (0,),
               suite: dict | None = None, train: dict | None = None,
               tables: dict[str, dict] | None = None, backbone: dict | None = None,
               dataset: dict | None = None) -> str:
    """The text of a tiny CPU suite: the ``tiny_cnn`` backbone (width 4, 8×8 inputs) on the
    handwritten digits at 8×8, each of ``strategies`` (``{"plugin": name, option: value}``) at
    every seed, all the labels, a few optimizer steps, no deployment measurement. ``suite`` adds
    to or replaces ``[suite]`` keys, ``train`` replaces the ``[train]`` table, ``backbone`` and
    ``dataset`` replace the ``[[backbone]]`` and ``[[dataset]]`` tables, ``tables`` adds tables
    (``{"budget_check": {"factor": 2}}``)."""
    def entry(table: str, values: dict) -> list[str]:
        return ["", table, *(f"{key} = {_toml(value)}" for key, value in values.items())]
    lines = entry("[suite]", {"name": "kit", "seeds": list(seeds), "measure_deployment": False,
                              **(suite or {})})
    lines += entry("[train]", train or {"epochs": 1, "min_steps": 3, "batch_size": 256})
    lines += entry("[[backbone]]", backbone or {"plugin": "tiny_cnn", "width": 4, "input_size": 8})
    lines += entry("[[dataset]]", dataset or {"plugin": "digits", "image_size": 8})
    for strategy in strategies:
        lines += entry("[[strategy]]", strategy)
    for name, values in (tables or {}).items():
        lines += entry(f"[{name}]", values)
    return "\n".join(lines[1:]) + "\n"


def _toml(value) -> str:
    """A TOML value: a dict as an inline table, a list of them, a JSON-written scalar."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {_toml(v)}" for key, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    return json.dumps(value)


class DieOptions(Options):
    marker: str = Field(description="file each attempt appends its process id to")
    controller: int = Field(description="process id of the run's controller: the cell never dies there")


def _die(ctx: CellContext, options: DieOptions) -> Outcome:
    """Write this process's id to ``marker``; outside the controller, exit at once (a worker that
    dies in the middle of a cell); in it, predict class 0."""
    with open(options.marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    if os.getpid() != options.controller:
        os._exit(1)
    return Outcome({name: torch.zeros(len(ctx.data[name]), ctx.num_classes) for name in ctx.eval_splits}, 0, 0)


@tlbench.hookimpl
def tlbench_strategies() -> list[StrategyPlugin]:
    """The kit's own strategy, for the suites it runs with ``plugins=("tlbench.testing",)``."""
    return [StrategyPlugin("kit_dies", "kills its worker process (conformance kit)", DieOptions, _die)]


def _specs(text: str, plugins: tuple[str, ...] = ()) -> list:
    """The cell specs of the suite ``text`` (no results folder: nothing persisted)."""
    from tlbench.plugins.host import load_registry
    from tlbench.plan.suite import parse_suite
    from tlbench.contract.session import CellSpec

    suite = parse_suite(text, "kit.toml", load_registry(plugins))
    return [CellSpec.of(cell, plugins, measure_deployment=suite.options.measure_deployment) for cell in suite.cells]


class _Session:
    """A :class:`tlbench.Session` handing out ``specs`` in order (the group asked for first) and
    keeping what comes back: ``records`` and ``failures`` by cell id, ``returned`` in order."""

    def __init__(self, specs: list):
        self.pending, self.total = list(specs), len(specs)
        self.records: dict[str, Any] = {}
        self.failures: dict[str, str] = {}
        self.returned: list[str] = []
        self.lock = threading.Lock()

    def next(self, prefer: str | None = None):
        with self.lock:
            spec = next((s for s in self.pending if s.group == prefer), self.pending[0] if self.pending else None)
            if spec is not None:
                self.pending.remove(spec)
            return spec

    def done(self, spec, record) -> None:
        with self.lock:
            self.returned.append(spec.cell_id)
            self.records[spec.cell_id] = record

    def failed(self, spec, reason: str) -> None:
        with self.lock:
            self.returned.append(spec.cell_id)
            self.failures[spec.cell_id] = reason


@contextmanager
def _one_thread() -> Iterator[None]:
    """One torch thread here and in the processes started meanwhile (:data:`tlbench.plugins.executors.THREAD_ENV`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with thread_env(1):
            yield
    finally:
        torch.set_num_threads(threads)


def _execute(run: Callable[[Any, Any], None], options: Any, specs: list) -> _Session:
    """Run ``specs`` with an executor's ``run`` at one thread; fail if it does not return within
    :data:`EXECUTOR_TIMEOUT` or does not hand back each cell exactly once."""
    session, raised = _Session(specs), []

    def target() -> None:
        try:
            run(session, options)
        except BaseException as exc:  # re-raised in the caller
            raised.append(exc)
    thread = threading.Thread(target=target, daemon=True, name="tlbench-kit-executor")
    with _one_thread():
        thread.start()
        thread.join(EXECUTOR_TIMEOUT)
    assert not thread.is_alive(), f"run did not return within {EXECUTOR_TIMEOUT:g} s"
    if raised:
        raise raised[0]
    ids = [s.cell_id for s in specs]
    assert not session.pending, f"run returned before asking for {len(session.pending)} of {len(ids)} cells"
    twice = sorted({c for c in session.returned if session.returned.count(c) > 1})
    assert not twice, f"cells handed back twice: {twice}"
    missing = sorted(set(ids) - set(session.returned))
    assert not missing, f"cells handed out but never handed back (session.done or session.failed): {missing}"
    return session


def _where(record) -> str:
    return f"{record.run.get('device', '?')}, {record.run.get('threads', '?')} thread(s)"


def check_same_records_as_inprocess(record: ExecutorPlugin, options: BaseModel) -> None:
    """On :func:`tiny_suite` every cell comes back once, with the cell id, status and metrics
    (to 1e-6) that the built-in ``inprocess`` executor gives on the CPU. Give options that run on
    the CPU; both run at one torch thread (an executor's own thread setting may override that)."""
    from tlbench.builtins.executors import inprocess

    specs = _specs(tiny_suite())
    expected = _execute(inprocess.run, inprocess.InprocessOptions(device="cpu"), specs).records
    got = _execute(record.run, options, specs)
    assert not got.failures, f"cells recorded as failed without a record: {got.failures}"
    for cell_id, want in expected.items():
        have = got.records[cell_id]
        assert have.cell_id == cell_id, f"the record handed back for cell {cell_id} is cell {have.cell_id}'s"
        assert have.status == want.status, \
            f"cell {cell_id}: status {have.status!r} ({have.error}), inprocess gives {want.status!r}"
        same = have.metrics.keys() == want.metrics.keys() and all(
            math.isclose(have.metrics[k], want.metrics[k], abs_tol=1e-6) for k in want.metrics)
        assert same, f"cell {cell_id}: metrics {have.metrics} on {_where(have)}, inprocess gives {want.metrics} " \
                     f"on {_where(want)}"


def check_dead_worker_retried_once(record: ExecutorPlugin, options: BaseModel) -> None:
    """A cell whose worker process dies (``os._exit`` in the middle of it) runs once more on a
    fresh worker, dies again and is recorded as failed with ``session.failed``; the other cell of
    the suite is stored ``ok``. An executor that runs the cell in this process runs it to the end."""
    with tempfile.TemporaryDirectory() as folder:
        marker = Path(folder) / "attempts"
        dies = {"plugin": "kit_dies", "marker": str(marker), "controller": os.getpid()}
        specs = _specs(tiny_suite([TINY_STRATEGIES[1], dies]), ("tlbench.testing",))
        session = _execute(record.run, options, specs)
        pids = marker.read_text().split() if marker.exists() else []
    survivor, doomed = (s.cell_id for s in specs)
    assert survivor in session.records and session.records[survivor].status == "ok", \
        f"the cell beside the dying one was not stored ok: {session.records.get(survivor) or session.failures}"
    assert pids, "the dying cell never ran"
    if set(pids) == {str(os.getpid())}:  # cells run in this process: nothing died
        assert doomed in session.records and session.records[doomed].status == "ok", \
            f"the cell run in this process was not stored ok: {session.failures.get(doomed)}"
        return
    assert len(pids) == 2 and len(set(pids)) == 2, \
        f"the cell whose worker died ran {len(pids)} time(s) in {len(set(pids))} process(es); expected twice, " \
        "the second time on a fresh worker (tlbench.plugins.executors.Retry)"
    assert doomed in session.failures, \
        "the cell whose worker died twice was not recorded with session.failed(spec, reason)"


# ------------------------------------------------------------------------------------------------
# Scorers


def scorer_data(separated: bool, per_class: int = 30, classes: int = 4, dim: int = 16,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulated ``(features N×dim float64, labels N, source logits N×2·classes)``. With
    ``separated`` class c is offset by 6 along feature c, and its source logits peak at source
    class 2c or 2c + 1; otherwise features and logits are noise, independent of the labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    rows = np.arange(len(labels))
    features = rng.normal(size=(len(labels), dim))
    logits = rng.normal(size=(len(labels), 2 * classes))
    if separated:
        features[rows, labels] += 6.0
        logits[rows, 2 * labels + rng.integers(0, 2, len(labels))] += 6.0
    return features, labels, logits


def _score(record: ScorerPlugin, features: np.ndarray, labels: np.ndarray, logits: np.ndarray) -> float:
    """The score, given the source logits only when the record declares it needs them (as the core
    does for a backbone without a source head)."""
    value = record.score(features, labels, logits if record.needs_source_logits else None)
    assert isinstance(value, (float, np.floating)), f"score returned {type(value).__name__}, not a float"
    assert math.isfinite(value), f"score returned {value}"
    return float(value)


def check_finite_score(record: ScorerPlugin, options: None) -> None:
    """Simulated separated and random data each get a finite float."""
    for separated in (True, False):
        _score(record, *scorer_data(separated))


def check_deterministic_score(record: ScorerPlugin, options: None) -> None:
    """The same input gives the same score (to 1e-9, relative) and is left as it was (the core
    hands one array to every scorer in turn)."""
    data = scorer_data(True)
    first, second = _score(record, *data), _score(record, *data)
    assert all(np.array_equal(a, b) for a, b in zip(data, scorer_data(True))), "score wrote into its inputs"
    assert math.isclose(first, second, rel_tol=1e-9, abs_tol=1e-12), f"two calls gave {first} and {second}"


def check_order_invariant(record: ScorerPlugin, options: None) -> None:
    """The examples in another order (features, labels and logits permuted alike) give the same score."""
    data = scorer_data(True)
    order = np.random.default_rng(1).permutation(len(data[1]))
    plain, permuted = _score(record, *data), _score(record, *(a[order] for a in data))
    assert math.isclose(plain, permuted, rel_tol=1e-6, abs_tol=1e-9), \
        f"{plain} in the original order, {permuted} in another"


def check_ranks_separated_first(record: ScorerPlugin, options: None) -> None:
    """Class-separated features (and informative source logits) score better than random ones."""
    separated, random = _score(record, *scorer_data(True)), _score(record, *scorer_data(False))
    better = separated > random if record.higher_is_better else separated < random
    assert better, f"separated data scored {separated}, random data {random} " \
                   f"(higher_is_better={record.higher_is_better})"


# ------------------------------------------------------------------------------------------------
# Tasks

#: the kit's tasks: classes, images and their side in pixels (the tiny_cnn backbone takes 32)
TASK_CLASSES, TASK_IMAGES, TASK_SIZE = 3, 6, 32


def _task_model(task: Task) -> TaskModel:
    return task.model(_tiny_cnn(TASK_SIZE)(False), TASK_CLASSES)


def _example(task: Task) -> Split:
    assert task.example is not None, "declares no example(n, size, num_classes) (tlbench.Task): the kit needs one"
    split = task.example(TASK_IMAGES, TASK_SIZE, TASK_CLASSES)
    assert isinstance(split, Split) and len(split) == TASK_IMAGES, \
        f"example({TASK_IMAGES}, ...) must return a tlbench.Split of {TASK_IMAGES} examples"
    return split


def check_task_documented(task: Task, options: None) -> None:
    """Help, score (a name for ``test_<score>``), its label and help, each metric's meaning, and
    an example whose targets pass the task's own ``check_targets``."""
    for name in ("help", "score", "score_label", "score_help"):
        assert str(getattr(task, name)).strip(), f"{name} is empty"
    assert task.score.isidentifier(), f"score {task.score!r} must be an identifier (the record's test_{task.score})"
    undocumented = [name for name, meaning in task.metrics.items() if not meaning.strip()]
    assert not undocumented, f"metrics without a meaning: {undocumented}"
    assert task.check_targets is not None, "declares no check_targets(split, num_classes) (tlbench.Task)"
    task.check_targets(_example(task), TASK_CLASSES)


def check_model_has_backbone_and_head(task: Task, options: None) -> None:
    """``model(backbone, num_classes)`` is a :class:`~tlbench.contract.backbone.TaskModel` holding
    that very backbone and a ``head`` of new parameters, none of them the backbone's."""
    backbone = _tiny_cnn(TASK_SIZE)(False)
    model = task.model(backbone, TASK_CLASSES)
    assert isinstance(model, TaskModel), f"model returned {type(model).__name__}, not a TaskModel"
    assert model.backbone is backbone, "model.backbone is not the backbone it was given"
    assert isinstance(model.head, nn.Module) and next(model.head.parameters(), None) is not None, \
        "model.head must be a module with parameters (what the task adds)"
    shared = {id(p) for p in model.head.parameters()} & {id(p) for p in backbone.parameters()}
    assert not shared, "model.head holds backbone parameters (freezing the backbone would freeze the head)"


def check_step_trains_the_head(task: Task, options: None) -> None:
    """The default step (``step(model, train options)``) gives a finite loss on the example batch
    whose gradient reaches the head's parameters."""
    from tlbench.contract.cells import TrainOptions

    model = _task_model(task).train()
    step = task.step(model, TrainOptions())
    inputs, truth = next(_example(task).batches(TASK_IMAGES))
    loss = step(inputs, truth).loss
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0 and torch.isfinite(loss), \
        f"the step's loss must be a finite scalar tensor, got {loss!r}"
    loss.backward()
    reached = [p for p in model.head.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert reached, "the step's loss has no gradient on the head's parameters"


def _outputs(task: Task, batch_size: int) -> torch.Tensor:
    return engine.predict(_task_model(task), _example(task), batch_size, _cpu_fp32)


def check_outputs_concatenate(task: Task, options: None) -> None:
    """Eval-mode outputs of the example in batches of 2 concatenate to those of one batch: a row
    per example, the same shape after the first dimension (detections padded to a fixed count)."""
    whole = _outputs(task, TASK_IMAGES)
    try:
        parts = _outputs(task, 2)
    except RuntimeError as exc:
        raise AssertionError(f"outputs of batches of 2 do not concatenate: {exc}") from None
    assert len(whole) == TASK_IMAGES, f"outputs have {len(whole)} rows for {TASK_IMAGES} examples"
    assert parts.shape == whole.shape and torch.allclose(parts, whole, atol=1e-4), \
        f"outputs in batches of 2 {tuple(parts.shape)} differ from those of one batch {tuple(whole.shape)}"


def check_evaluation_is_mean_of_evidence(task: Task, options: None) -> None:
    """``evaluate`` returns an :class:`~tlbench.tasks.task.Evaluation` whose ``score`` is the mean
    of its evidence's ``values`` (what intervals and paired tests resample), whose evidence rows
    index the split (distinct rows in ``[0, N)``) and whose ``metrics`` are the declared ones, finite."""
    split = _example(task)
    evaluation = task.evaluate(_outputs(task, TASK_IMAGES), split, TASK_CLASSES)
    assert isinstance(evaluation, Evaluation), f"evaluate returned {type(evaluation).__name__}, not an Evaluation"
    values, index = evaluation.evidence.values, np.asarray(evaluation.evidence.index)
    assert len(values) == len(index) > 0, f"evidence has {len(index)} rows and {len(values)} values"
    assert math.isclose(evaluation.score, float(np.mean(values)), abs_tol=1e-6), \
        f"score {evaluation.score} is not the mean of the evidence's values {float(np.mean(values))}"
    assert len(set(index.tolist())) == len(index) and index.min() >= 0 and index.max() < len(split), \
        f"evidence rows must be distinct rows of the split, in [0, {len(split)}): {index.tolist()}"
    assert set(evaluation.metrics) == set(task.metrics), \
        f"metrics {sorted(evaluation.metrics)}, declared {sorted(task.metrics)} (Task.metrics documents each)"
    assert all(isinstance(v, float) and math.isfinite(v) for v in evaluation.metrics.values()), \
        f"metrics must be finite floats: {evaluation.metrics}"


# ------------------------------------------------------------------------------------------------
# Entry points

CHECKS: dict[type, list[Callable]] = {
    DatasetPlugin: [check_options_documented, check_deterministic_load, check_splits_shaped],
    BackbonePlugin: [check_options_documented, check_same_architecture, check_extract_shape,
                     check_blocks_cover_parameters],
    StrategyPlugin: [check_options_documented, check_logits_for_eval_splits, check_deterministic,
                     check_reads_only_train_labels, check_predicts_with_its_classifier,
                     check_outputs_on_a_dense_cell],
    ExecutorPlugin: [check_options_documented, check_same_records_as_inprocess, check_dead_worker_retried_once],
    ScorerPlugin: [check_finite_score, check_deterministic_score, check_order_invariant, check_ranks_separated_first],
    Task: [check_task_documented, check_model_has_backbone_and_head, check_step_trains_the_head,
           check_outputs_concatenate, check_evaluation_is_mean_of_evidence],
}


#: checks that apply only to some records of their kind: check -> whether it applies to a record
APPLIES = {check_predicts_with_its_classifier: lambda record: record.finetunes_pretrained,
           check_outputs_on_a_dense_cell: lambda record: bool(DENSE_TASKS & set(record.tasks))}


def plugin_checks(record, options: dict | None = None) -> list[Check]:
    """The checks that apply to ``record`` (a dataset, backbone, strategy, executor or scorer record, or a Task)."""
    for kind, checks in CHECKS.items():
        if isinstance(record, kind):
            return [Check(function, options) for function in checks
                    if APPLIES.get(function, lambda record: True)(record)]
    raise TypeError(f"no conformance checks for {type(record).__name__}; give a DatasetPlugin, "
                    "BackbonePlugin, StrategyPlugin, ExecutorPlugin, ScorerPlugin or Task")


def _check_all(record, options: dict | None) -> None:
    for check in plugin_checks(record, options):
        check(record)


def check_dataset_plugin(record: DatasetPlugin, options: dict | None = None) -> None:
    """Run every dataset check; an AssertionError names the plugin and the failed check."""
    assert isinstance(record, DatasetPlugin), f"{record!r} is not a tlbench.DatasetPlugin"
    _check_all(record, options)


def check_backbone_plugin(record: BackbonePlugin, options: dict | None = None) -> None:
    """Run every backbone check; an AssertionError names the plugin and the failed check."""
    assert isinstance(record, BackbonePlugin), f"{record!r} is not a tlbench.BackbonePlugin"
    _check_all(record, options)


def check_strategy_plugin(record: StrategyPlugin, options: dict | None = None) -> None:
    """Run every strategy check (on a tiny CPU cell); an AssertionError names the plugin and check."""
    assert isinstance(record, StrategyPlugin), f"{record!r} is not a tlbench.StrategyPlugin"
    _check_all(record, options)


def check_executor_plugin(record: ExecutorPlugin, options: dict | None = None) -> None:
    """Run every executor check (on tiny CPU suites); an AssertionError names the plugin and check."""
    assert isinstance(record, ExecutorPlugin), f"{record!r} is not a tlbench.ExecutorPlugin"
    _check_all(record, options)


def check_scorer_plugin(record: ScorerPlugin) -> None:
    """Run every scorer check (on simulated data); an AssertionError names the plugin and check."""
    assert isinstance(record, ScorerPlugin), f"{record!r} is not a tlbench.ScorerPlugin"
    _check_all(record, None)


def check_task_plugin(task: Task) -> None:
    """Run every task check (on the tiny_cnn backbone and the task's example); an AssertionError
    names the task and the failed check."""
    assert isinstance(task, Task), f"{task!r} is not a tlbench.Task"
    _check_all(task, None)


def parametrize_plugin_checks(records: Iterable[Any]):
    """``pytest.mark.parametrize("record, check", ...)`` with one case per (plugin, check), ids
    ``<plugin>-<check>``. Each item is a record or a ``(record, options dict)`` pair; the test
    body is ``check(record)``."""
    import pytest

    cases, ids = [], []
    for item in records:
        record, options = item if isinstance(item, tuple) else (item, None)
        for check in plugin_checks(record, options):
            cases.append((record, check))
            ids.append(f"{record.name}-{check.name}")
    return pytest.mark.parametrize(("record", "check"), cases, ids=ids)
