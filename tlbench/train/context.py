"""What a strategy sees of a cell: its data on the device, a backbone factory, the shared
training loop and evaluation. Strategies use this and nothing else of the core."""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from tlbench.train import data as data_mod
from tlbench.train import engine
from tlbench.train.augment import Augmenter
from tlbench.contract.backbone import Backbone, TaskModel
from tlbench.contract.values import Split
from tlbench.train.compat import train_loop_step
from tlbench.contract.step import TrainStep
from tlbench.tasks.classification import CLASSIFICATION
from tlbench.tasks.task import Task
from tlbench.train.strategies import count_params, seed_everything  # noqa: F401 (count_params: as before)

#: points of the loss curve a cell records (each the mean loss since the last; read at the end)
CURVE_POINTS = 20
#: evaluations of the selection split per cell when ``[train] eval_every = 0``
EVAL_POINTS = 10

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.contract.cells import TrainOptions
    from tlbench.contract.values import Outcome


@dataclass
class CellContext:
    """``data`` holds ``train`` (the cell's label fraction), ``val``, ``test`` and, for a shift
    pair, ``target_train`` (all of it: unlabelled use), ``target_val``, ``target_test``; all
    encoded by the backbone's encoder and on ``device``. ``train`` is the suite's validated
    ``[train]`` options (epochs, batch_size, compile, ...); ``train_index`` says which rows of the
    dataset's full training split ``data["train"]`` holds, ``val_index`` (None: all) which rows
    of its validation split ``data["val"]`` holds (the label budget cuts it too).

    ``select_on`` is the split the training loop evaluates to keep its best state (``val``: on a
    shift pair the *source* validation split; only an oracle selects on ``target_val``), held as
    ``selection`` when the context is made (the core's copy: the conformance kit replaces the
    labels a strategy sees in ``data`` and checks that nothing changes);
    ``energy()`` reads an energy counter in joules (None: none available). After training,
    ``curve`` holds the training loss, ``val_curve`` the evaluations (``{step, examples, seconds,
    val_<score>[, joules]}``: the task's score, e.g. ``val_acc``), ``best_step`` the step whose
    state was kept, ``trained_steps`` the optimizer steps taken and ``stopped`` how the last training loop ended: ``"plateau"`` (the
    patience rule fired), ``"cap"`` (it reached its planned steps); None without a loop.

    ``strategies(name)`` is the registered strategy plugin of that name (the worker and the
    conformance kit wire it to their registry): :meth:`run_strategy` runs one.

    ``task`` is the dataset's :class:`~tlbench.tasks.task.Task`: :meth:`classifier` builds its model,
    :meth:`fit` trains with its step, the loop selects on its score and :meth:`predict` returns
    its outputs (logits for classification, detections, per-pixel logits)."""

    data: dict[str, Split]
    train_index: torch.Tensor
    num_classes: int
    device: torch.device
    train: TrainOptions
    seed: int
    build: Callable[[bool], Backbone]
    features_cache: Callable[[Callable[[], Backbone]], "Features"] | None
    label_fraction: float = 1.0
    val_index: torch.Tensor | None = None
    select_on: str = "val"
    energy: Callable[[], float | None] = field(default=lambda: None)
    clock: engine.Clock = field(default_factory=engine.Clock)
    curve: list[dict] = field(default_factory=list)
    val_curve: list[dict] = field(default_factory=list)
    best_step: int | None = None
    trained_steps: int | None = None
    stopped: str | None = None
    deployed: tuple[nn.Module, dict[str, torch.Tensor] | None] | None = None  # set by predict
    strategies: Callable[[str], Any] | None = None
    task: Task = CLASSIFICATION

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(self.seed)
        self.selection: Split | None = self.data.get(self.select_on)

    @property
    def eval_splits(self) -> list[str]:
        """The splits a strategy returns logits for: ``val``, ``test``, a shift pair's ``target_val`` and
        ``target_test``, and each out-of-distribution test set ``ood:<set>`` (``[[dataset]] ood``)."""
        return ([name for name in ("val", "test", "target_val", "target_test") if name in self.data]
                + sorted(name for name in self.data if name.startswith("ood:")))

    def autocast(self):
        return engine.autocast(self.device, self.train.precision)

    def backbone(self, pretrained: bool = True) -> Backbone:
        """A fresh backbone on the device (``pretrained=False``: same architecture, random init)."""
        return engine.place(self.build(pretrained), self.device)

    def classifier(self, pretrained: bool = True) -> TaskModel:
        """A fresh backbone with the task's new head (:class:`~tlbench.Classifier` for classification)."""
        return self.task.model(self.backbone(pretrained), self.num_classes).to(self.device)

    def labelled(self, split: str) -> str:
        """The name of the cell's label budget of ``split``: the stratified ``label_fraction`` of
        its examples chosen by the cell's seed (``train`` already is one). For a strategy that
        trains on another labelled split, e.g. the oracle on ``target_train``."""
        if split == "train" or self.label_fraction >= 1.0:
            return split
        name = f"{split}@{self.label_fraction:g}"
        if name not in self.data:
            full = self.data[split]
            index = data_mod.label_subset(full.labels.cpu(), self.label_fraction, self.seed)
            self.data[name] = full.subset(index.to(full.labels.device))
        return name

    def batches(self, split: str = "train", shuffle: bool = True, drop_last: bool = False):
        return self.data[split].batches(self.train.batch_size, shuffle, self.generator, drop_last)

    def steps(self, split: str = "train") -> int:
        """Optimizer steps a cell trains (at most, with ``stop = "plateau"``): ``[train] steps`` if
        set, else ``epochs`` over ``split`` but at least ``min_steps``; times ``[train] budget``
        (:meth:`budgeted`)."""
        if self.train.steps is not None:
            return self.budgeted(self.train.steps)
        return self.budgeted(engine.planned_steps(len(self.data[split]), self.train.batch_size,
                                                  self.train.epochs, self.train.min_steps))

    def budgeted(self, steps: int) -> int:
        """``steps`` times the cell's ``[train] budget`` (1 but in a budget-check cell), rounded up:
        for a strategy that sizes its run itself (e.g. DANN's ``iterations``), so that the budget
        check re-runs it with the same multiple of its steps as every other strategy."""
        return steps if self.train.budget == 1.0 else engine.budgeted(steps, self.train.budget)

    def optimizer(self, params, lr: float, weight_decay: float, steps: int, kind: str = "adamw",
                  schedule: Callable[[float], float] | None = None):
        """(optimizer, LR scheduler) for ``steps`` steps. ``params`` are parameters or parameter
        groups (dicts with their own ``lr``). ``kind``: ``"adamw"`` or ``"sgd"`` (momentum 0.9).
        ``schedule(progress in [0, 1]) -> factor``; default: ``[train] schedule`` (linear warm-up
        over the ``warmup`` fraction of the steps, then cosine decay or constant)."""
        if kind == "sgd":
            opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
        else:
            opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        if schedule is None:
            warmup = max(1, round(steps * self.train.warmup)) if self.train.warmup > 0 else 0
            return opt, engine.cosine_with_warmup(opt, steps, warmup, self.train.schedule)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: schedule(step / steps))

    def fit(self, model: nn.Module, lr: float, weight_decay: float = 0.05, split: str = "train",
            layer_decay: float = 1.0, step: TrainStep | None = None, recalibrate_bn: bool = False) -> None:
        """Supervised training of ``model``'s trainable parameters on ``split``: AdamW without
        weight decay on biases and norms (as timm), with ``layer_decay < 1`` layer-wise learning
        rates (:meth:`layer_scales`), the ``[train]`` schedule, and ``step`` (a :class:`TrainStep`
        around ``model``; default: the task's, for classification cross-entropy with ``[train]
        label_smoothing``).
        ``recalibrate_bn``: precise batch-norm statistics before every evaluation (:meth:`train_loop`)."""
        scales = self.layer_scales(model, layer_decay) if layer_decay != 1.0 else {}
        groups = engine.param_groups(list(model.named_parameters()), lr, weight_decay,
                                     lambda p: scales.get(id(p), 1.0))
        steps = self.steps(split)
        opt, schedule = self.optimizer(groups, lr, weight_decay, steps)
        step = step or self.task.step(model, self.train)
        self.train_loop(step, opt, schedule, steps, split, recalibrate_bn=recalibrate_bn)

    @staticmethod
    def layer_scales(model: nn.Module, decay: float) -> dict[int, float]:
        """Layer-wise learning-rate decay (BEiT; timm's ``param_groups_layer_decay``) over the
        :class:`Classifier` inside ``model``: the head trains at the full rate, the backbone's last
        block (``blocks()``, input to output) at ``decay`` times it, the one below at ``decay**2``,
        ...; ``{id(parameter): factor}`` (parameters outside every block: the full rate)."""
        classifier = next((m for m in model.modules() if isinstance(m, TaskModel)), None)
        if classifier is None:
            raise TypeError("layer_decay needs a tlbench.contract.backbone.TaskModel (Classifier) inside the model")
        blocks = classifier.backbone.blocks()
        return {id(p): decay ** (len(blocks) - i) for i, block in enumerate(blocks) for p in block.parameters()}

    def train_loop(self, step_module: TrainStep, opt, schedule, steps: int, split: str = "train",
                   loss_of=None, recalibrate_bn: bool = False) -> None:
        """The training loop every strategy shares: ``steps`` steps of ``opt`` and ``schedule``
        over shuffled batches of ``split``, epoch after epoch, timed by ``clock``.

        ``step_module`` (a :class:`tlbench.contract.step.TrainStep`) runs under autocast and returns the
        loss, the examples it trained on and named loss components; with ``[train] compile``
        it is compiled once (full batches only, so shapes stay static) and the first step, which
        compiles, is timed as ``compile_seconds`` apart from training. A non-finite loss raises
        ``Diverged``. Image batches are augmented first (``[train] augment``, :mod:`tlbench.train.augment`).

        Every ``[train] eval_every`` steps (or ``eval_every_epochs`` epochs of ``split``) and at
        the last, ``step_module.model`` is evaluated on ``select_on`` (never test, never target
        labels unless an oracle's) and the state of its best evaluation kept on the device; it is
        restored at the end (``keep_best``), so the strategy predicts, and test is scored, at
        ``best_step``. With ``patience`` the loop stops after that many evaluations without
        improvement (``stop = "plateau"``: ``patience`` times ``[train] budget``, rounded up);
        ``stopped`` says whether it did (``"plateau"``) or ran its ``steps`` (``"cap"``).
        Evaluation time is kept apart from training time as ``eval_seconds``.

        ``recalibrate_bn``: before every evaluation the batch-norm running statistics are
        re-estimated over one pass of ``split`` (:meth:`recalibrate_batch_norm`, timed as
        training), so the state kept, buffers included, is the very model that was selected and
        is then scored; without a selection split, once after the last step. It does not change the
        weights' trajectory (training batches normalise by their own statistics).

        0.2's ``train_loop(model, opt, schedule, steps, loss_of)`` still works until 0.4.0, with a
        ``DeprecationWarning`` (:func:`tlbench.train.compat.train_loop_step`).
        """
        step_module, split = train_loop_step(step_module, split, loss_of)
        step_module.train()
        run = self._compiled(step_module)
        check = engine.FiniteCheck()
        augment = None if self.train.augment == "none" else (
            self.task.augment(self.train.augment, self.seed, self.device) if self.task.augment
            else _ImagesOnly(Augmenter(self.train.augment, self.seed, self.device)))
        per_epoch = len(self.data[split]) // self.train.batch_size if run is not step_module else \
            math.ceil(len(self.data[split]) / self.train.batch_size)
        best = BestState(self, step_module.model, steps, max(1, per_epoch),
                         (lambda model: self._recalibrate(model, split)) if recalibrate_bn else None)
        every = max(1, steps // CURVE_POINTS)
        curve, sums, summed = [], {}, 0
        step = 0
        with self.clock.training(self.device):
            for inputs, labels in self._stream(split, drop_last=run is not step_module):
                if augment is not None:
                    inputs, labels = augment(inputs, labels)
                step_module.advance(step, steps)
                start = time.perf_counter() if step == 0 and run is not step_module else None
                with self.autocast():
                    out = run(inputs, labels)
                check(out.loss, step, last=step == steps - 1)
                out.loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                schedule.step()
                if start is not None:
                    self.clock.exclude(start, "compile_seconds", self.device)
                else:
                    self.clock.images += out.examples
                for name, value in {"loss": out.loss, **out.components}.items():  # summed on the device
                    sums[name] = sums.get(name, 0.0) + value.detach()
                summed += 1
                if step % every == 0 or step == steps - 1:
                    curve.append({"step": step, **{k: v / summed for k, v in sums.items()}})
                    sums, summed = {}, 0
                step += 1
                if best.due(step) and best.evaluate(step):
                    self.stopped = "plateau"
                    break
                if step == steps:
                    self.stopped = "cap"
                    break
        check.finish(step - 1)
        self.curve += [{k: float(v) for k, v in point.items()} for point in curve]
        if recalibrate_bn and best.split is None:  # nothing evaluated: the final model, once
            self.recalibrate_batch_norm(step_module.model, split)
        best.restore()
        self.trained_steps = (self.trained_steps or 0) + step
        self.best_step = best.step

    def _stream(self, split: str, drop_last: bool):
        """Shuffled batches of ``split``, epoch after epoch, without end."""
        while True:
            yield from self.batches(split, drop_last=drop_last)

    def recalibrate_batch_norm(self, model: nn.Module, split: str = "train") -> None:
        """Precise BN: re-estimate every batch-norm layer's running statistics as the plain average
        over one pass of ``split`` with the current weights (timed as training). After a short
        schedule from random initialisation the running averages lag the weights, and evaluation
        can collapse to one class although training accuracy is fine. Layers that ``model.train()``
        leaves in eval mode (:class:`tlbench.train.strategies.FrozenNormStats`) keep their statistics.
        ``ctx.fit(..., recalibrate_bn=True)`` does this before every evaluation instead."""
        with self.clock.training(self.device):
            self._recalibrate(model, split)

    @torch.no_grad()
    def _recalibrate(self, model: nn.Module, split: str) -> None:
        """:meth:`recalibrate_batch_norm` without the clock (inside the loop's timed block)."""
        was_training = model.training
        model.train()
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                 and m.track_running_stats and m.training]
        if norms:  # none in e.g. a transformer (layer norm only): nothing to re-estimate
            momenta = [m.momentum for m in norms]
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative average
            for inputs, _ in self.batches(split, shuffle=False):
                with self.autocast():
                    model(inputs)
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
        model.train(was_training)

    def _compiled(self, step_module: TrainStep):
        if not getattr(self.train, "compile", False):
            return step_module
        if len(self.data["train"]) < self.train.batch_size:
            return step_module  # a single short batch: nothing to gain, and drop_last would drop it
        return torch.compile(step_module, dynamic=False)

    def predict(self, model: nn.Module, adapter: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The outputs of ``model`` on every evaluation split (classification: logits). ``model`` is
        the cell's deployed model: its size and speed are measured after the strategy returns
        (:mod:`tlbench.train.deploy`).
        ``adapter``: when ``model`` has trained tensors merged in (LoRA), those tensors as they were
        before merging, i.e. what a separate adapter file holds; its size is measured too."""
        self.deployed = (model, adapter)
        return {name: engine.predict(model, self.data[name], self.train.eval_batch_size, self.autocast)
                for name in self.eval_splits}

    def run_strategy(self, name: str, options: dict) -> tuple["Outcome", nn.Module | None]:
        """Run the registered strategy ``name`` with ``options`` (a dict its plugin validates) on
        this very context, for a strategy built on others (WiSE-FT, soups): its training is this
        cell's (the clock, curves and steps add up). The global generators and the batch order are
        seeded with the cell's seed first, so every run starts as the cell itself would: the same
        pretrained weights, the same new head, the same batches. Returns its outcome and the model
        it predicted with (:meth:`predict`; None: it predicted without one, as the linear probe)."""
        if self.strategies is None:
            raise TypeError("this CellContext has no strategies lookup: make it with strategies=<name -> plugin>")
        record = self.strategies(name)
        seed_everything(self.seed)
        self.generator.manual_seed(self.seed)
        self.deployed = None
        outcome = record.run(self, record.options.model_validate(options))
        return outcome, self.deployed[0] if self.deployed else None

    def selection_accuracy(self, model: nn.Module) -> float:
        """The task's score of ``model`` on the selection split (``select_on``, the core's labels;
        classification: accuracy), timed as evaluation (``eval_seconds``): for a strategy that chooses
        between trained models."""
        with self.clock.training(self.device):
            return self._selection_accuracy(model)

    def _selection_accuracy(self, model: nn.Module) -> float:
        """:meth:`selection_accuracy` inside a timed block (the training loop's)."""
        start = time.perf_counter()
        if self.task.selection is not None:
            score = self.task.selection(model, self.selection, self.train.eval_batch_size, self.autocast,
                                        self.num_classes)
        else:
            outputs = engine.predict(model, self.selection, self.train.eval_batch_size, self.autocast)
            score = self.task.evaluate(outputs, self.selection, self.num_classes).score
        self.clock.exclude(start, "eval_seconds", self.device)
        return score

    def features(self) -> "Features":
        """Frozen pretrained features of every split, extracted once and shared by every cell with
        the same backbone and dataset (any seed, label fraction or strategy)."""
        full = self.features_cache(lambda: self.backbone(pretrained=True))
        cut = {"train": full.splits["train"][self.train_index]}
        if self.val_index is not None:
            cut["val"] = full.splits["val"][self.val_index]
        return Features({**full.splits, **cut},
                        full.backbone_params, full.seconds_per_image, full.source_logits)


class BestState:
    """The training loop's evaluations of ``ctx.select_on`` and the best state so far.

    The state kept is a copy (on the device) of ``model``'s trainable parameters and of its
    buffers (batch-norm statistics), taken at each strictly better evaluation: the first of equal
    accuracies wins. Without a selection split (``ctx.selection`` None) nothing is evaluated.

    Evaluations come every ``[train] eval_every_epochs`` epochs (``per_epoch`` steps each), but
    at least ``eval_every`` steps apart when both are set (so that an epoch of a few steps on a
    small label budget does not make the patience a handful of steps); else every
    ``eval_every`` steps, else about ``EVAL_POINTS`` times;
    the loop stops after ``patience`` evaluations without improvement (with ``stop =
    "plateau"``, times ``[train] budget``). ``recalibrate(model)``, if given, runs before each."""

    def __init__(self, ctx: CellContext, model: nn.Module, steps: int, per_epoch: int = 1,
                 recalibrate: Callable[[nn.Module], None] | None = None):
        self.ctx, self.model, self.steps, self.recalibrate = ctx, model, steps, recalibrate
        train = ctx.train
        if train.eval_every_epochs > 0:
            self.every = max(1, round(train.eval_every_epochs * per_epoch), train.eval_every)
        else:
            self.every = train.eval_every or max(1, steps // EVAL_POINTS)
        self.patience = train.patience
        if train.stop == "plateau" and train.patience:
            self.patience = engine.budgeted(train.patience, train.budget)
        self.split = ctx.selection
        self.accuracy, self.step, self.state, self.stale = -1.0, None, None, 0

    def due(self, step: int) -> bool:
        """Whether to evaluate after ``step`` optimizer steps."""
        return self.split is not None and (step % self.every == 0 or step == self.steps)

    def evaluate(self, step: int) -> bool:
        """Evaluate after ``step`` steps, keep the state if it is the best; True: stop (patience)."""
        ctx = self.ctx
        if self.recalibrate is not None:  # timed as training: the loop's clock is running
            self.recalibrate(self.model)
        accuracy = ctx._selection_accuracy(self.model)
        point = {"step": step, "examples": ctx.clock.images, "seconds": ctx.clock.seconds(),
                 f"val_{ctx.task.score}": accuracy}
        joules = ctx.energy()
        if joules is not None:
            point["joules"] = joules
        ctx.val_curve.append(point)
        if accuracy > self.accuracy:
            self.accuracy, self.step, self.stale = accuracy, step, 0
            if ctx.train.keep_best:
                self.state = {name: t.detach().clone() for name, t in _trained_state(self.model)}
        else:
            self.stale += 1
        if not ctx.train.keep_best:
            self.step = step  # the reported state is the last one
        return bool(self.patience) and self.stale >= self.patience

    @torch.no_grad()
    def restore(self) -> None:
        """Put the best evaluation's state back into the model (in place)."""
        if self.state is not None:
            for name, tensor in _trained_state(self.model):
                tensor.copy_(self.state[name])


def _trained_state(model: nn.Module):
    """(name, tensor) of what training changes: trainable parameters and every buffer."""
    parameters = ((n, p) for n, p in model.named_parameters() if p.requires_grad)
    return itertools.chain(parameters, model.named_buffers())


@dataclass(frozen=True)
class Features:
    """Features of each split, the backbone's parameter count, the extraction cost per example
    (a linear probe is charged the forward pass over its own training examples) and, when the
    backbone has a ``source_head``, its source-task logits of each split."""

    splits: dict[str, torch.Tensor]
    backbone_params: int
    seconds_per_image: float
    source_logits: dict[str, torch.Tensor] | None = None


class _ImagesOnly:
    """An image :class:`~tlbench.train.augment.Augmenter` as the loop calls an augmentation,
    ``(images, truth) -> (images, truth)``: for a task whose truth is one label per image."""

    def __init__(self, augment: Augmenter):
        self.augment = augment

    def __call__(self, images, truth):
        return self.augment(images), truth
