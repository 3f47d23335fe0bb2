"""What a strategy sees of a cell: its data on the device, a backbone factory, the shared
training loop and evaluation. Strategies use this and nothing else of the core."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from tlbench import data as data_mod
from tlbench import engine
from tlbench.backbone import Backbone, Classifier
from tlbench.records import Split
from tlbench.step import ClassificationStep, TrainStep

#: points of the loss curve a cell records (read where the loop syncs anyway)
CURVE_POINTS = 20

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.suite import TrainOptions


@dataclass
class CellContext:
    """``data`` holds ``train`` (the cell's label fraction), ``val``, ``test`` and, for a shift
    pair, ``target_train`` (all of it: unlabelled use), ``target_val``, ``target_test``; all
    encoded by the backbone's encoder and on ``device``. ``train`` is the suite's validated
    ``[train]`` options (epochs, batch_size, compile, ...); ``train_index`` says which rows of the
    dataset's full training split ``data["train"]`` holds."""

    data: dict[str, Split]
    train_index: torch.Tensor
    num_classes: int
    device: torch.device
    train: TrainOptions
    seed: int
    build: Callable[[bool], Backbone]
    features_cache: Callable[[Callable[[], Backbone]], "Features"] | None
    label_fraction: float = 1.0
    clock: engine.Clock = field(default_factory=engine.Clock)
    curve: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(self.seed)

    @property
    def eval_splits(self) -> list[str]:
        return [name for name in ("val", "test", "target_val", "target_test") if name in self.data]

    def autocast(self):
        return engine.autocast(self.device, self.train.precision)

    def backbone(self, pretrained: bool = True) -> Backbone:
        """A fresh backbone on the device (``pretrained=False``: same architecture, random init)."""
        model = self.build(pretrained).to(self.device)
        if self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return model

    def classifier(self, pretrained: bool = True) -> Classifier:
        return Classifier(self.backbone(pretrained), self.num_classes).to(self.device)

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
        return engine.batches(self.data[split], self.train.batch_size, shuffle, self.generator, drop_last)

    def steps(self, split: str = "train") -> int:
        return engine.planned_steps(len(self.data[split]), self.train.batch_size,
                                    self.train.epochs, self.train.min_steps)

    def optimizer(self, params, lr: float, weight_decay: float, steps: int, kind: str = "adamw",
                  schedule: Callable[[float], float] | None = None):
        """(optimizer, LR scheduler) for ``steps`` steps. ``params`` are parameters or parameter
        groups (dicts with their own ``lr``). ``kind``: ``"adamw"`` or ``"sgd"`` (momentum 0.9).
        ``schedule(progress in [0, 1]) -> factor``; default: 5% linear warm-up then cosine decay."""
        if kind == "sgd":
            opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
        else:
            opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        if schedule is None:
            return opt, engine.cosine_with_warmup(opt, steps, max(1, steps // 20))
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: schedule(step / steps))

    def fit(self, model: nn.Module, lr: float, weight_decay: float = 0.05, split: str = "train") -> None:
        """Supervised cross-entropy training of ``model``'s trainable parameters on ``split``."""
        params = [p for p in model.parameters() if p.requires_grad]
        steps = self.steps(split)
        opt, schedule = self.optimizer(params, lr, weight_decay, steps)
        self.train_loop(ClassificationStep(model), opt, schedule, steps, split)

    def train_loop(self, step_module: TrainStep, opt, schedule, steps: int, split: str = "train") -> None:
        """The training loop every strategy shares: ``steps`` steps of ``opt`` and ``schedule``
        over shuffled batches of ``split``, epoch after epoch, timed by ``clock``.

        ``step_module`` (a :class:`tlbench.step.TrainStep`) runs under autocast and returns the
        loss, the examples it trained on and named loss components; with ``[train] compile``
        it is compiled once (full batches only, so shapes stay static) and the first step, which
        compiles, is timed as ``compile_seconds`` apart from training. A non-finite loss raises
        ``Diverged``.
        """
        step_module.train()
        run = self._compiled(step_module)
        check = engine.FiniteCheck()
        every = max(1, steps // CURVE_POINTS)
        step = 0
        with self.clock.training(self.device):
            while step < steps:
                for inputs, labels in self.batches(split, drop_last=run is not step_module):
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
                    if step % every == 0 or step == steps - 1:
                        self.curve.append({"step": step, "loss": out.loss.detach(),
                                           **{k: v.detach() for k, v in out.components.items()}})
                    step += 1
                    if step == steps:
                        break
        self.curve[:] = [{k: float(v) for k, v in point.items()} for point in self.curve]

    @torch.no_grad()
    def recalibrate_batch_norm(self, model: nn.Module, split: str = "train") -> None:
        """Precise BN: re-estimate every batch-norm layer's running statistics as the plain average
        over one pass of ``split`` with the final weights (timed as training). After a short
        schedule from random initialisation the running averages lag the weights, and evaluation
        can collapse to one class although training accuracy is fine."""
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                 and m.track_running_stats]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        was_training = model.training
        model.train()
        with self.clock.training(self.device):
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

    def predict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Logits of ``model`` on every evaluation split."""
        return {name: engine.predict(model, self.data[name], self.train.eval_batch_size, self.autocast)
                for name in self.eval_splits}

    def features(self) -> "Features":
        """Frozen pretrained features of every split, extracted once and shared by every cell with
        the same backbone and dataset (any seed, label fraction or strategy)."""
        full = self.features_cache(lambda: self.backbone(pretrained=True))
        return Features({**full.splits, "train": full.splits["train"][self.train_index]},
                        full.backbone_params, full.seconds_per_image, full.source_logits)


@dataclass(frozen=True)
class Features:
    """Features of each split, the backbone's parameter count, the extraction cost per example
    (a linear probe is charged the forward pass over its own training examples) and, when the
    backbone has a ``source_head``, its source-task logits of each split."""

    splits: dict[str, torch.Tensor]
    backbone_params: int
    seconds_per_image: float
    source_logits: dict[str, torch.Tensor] | None = None


def count_params(*modules: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters of the modules together."""
    params = {id(p): p for m in modules for p in m.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
