"""What a strategy sees of a cell: its data on the device, a backbone factory, the shared
training loop and evaluation. Strategies use this and nothing else of the core."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from tlbench import engine
from tlbench.backbone import Backbone, Classifier
from tlbench.records import Split


@dataclass
class CellContext:
    """``data`` holds ``train`` (the cell's label fraction), ``val``, ``test`` and, for a shift
    pair, ``target_train``, ``target_val``, ``target_test``; all on ``device``.
    ``train`` is the suite's validated ``[train]`` options (epochs, batch_size, ...);
    ``train_index`` says which rows of the dataset's full training split ``data["train"]`` holds."""

    data: dict[str, Split]
    train_index: torch.Tensor
    num_classes: int
    device: torch.device
    train: object
    seed: int
    build: Callable[[bool], Backbone]
    features_cache: Callable[[Callable[[], Backbone]], "Features"]
    clock: engine.Clock = field(default_factory=engine.Clock)

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

    def batches(self, split: str = "train", shuffle: bool = True):
        return engine.batches(self.data[split], self.train.batch_size, shuffle, self.generator)

    def steps(self, split: str = "train") -> int:
        return engine.planned_steps(len(self.data[split]), self.train.batch_size,
                                    self.train.epochs, self.train.min_steps)

    def optimizer(self, params, lr: float, weight_decay: float, steps: int):
        """AdamW with linear warm-up (5% of steps) and cosine decay, as most fine-tuning recipes."""
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        return opt, engine.cosine_with_warmup(opt, steps, max(1, steps // 20))

    def fit(self, model: nn.Module, lr: float, weight_decay: float = 0.05,
            split: str = "train") -> None:
        """Supervised cross-entropy training of ``model``'s trainable parameters on ``split``."""
        params = [p for p in model.parameters() if p.requires_grad]
        steps = self.steps(split)
        opt, schedule = self.optimizer(params, lr, weight_decay, steps)

        def loss_of(inputs, labels, step):
            return nn.functional.cross_entropy(model(inputs), labels), len(labels)
        self.train_loop(model, opt, schedule, steps, loss_of, split)

    def train_loop(self, model: nn.Module, opt, schedule, steps: int,
                   loss_of: Callable[[object, torch.Tensor, int], tuple[torch.Tensor, int]],
                   split: str = "train") -> None:
        """The training loop every strategy shares: ``steps`` steps of ``opt`` and ``schedule``
        over shuffled batches of ``split``, epoch after epoch, timed by ``clock``.

        ``loss_of(inputs, labels, step)`` runs under autocast and returns the loss and the number
        of images it trained on (for throughput). A non-finite loss raises ``Diverged``.
        """
        model.train()
        step = 0
        check = engine.FiniteCheck()
        with self.clock.training(self.device):
            while step < steps:
                for inputs, labels in self.batches(split):
                    with self.autocast():
                        loss, images = loss_of(inputs, labels, step)
                    check(loss, step, last=step == steps - 1)
                    loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    schedule.step()
                    self.clock.images += images
                    step += 1
                    if step == steps:
                        break

    def predict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Logits of ``model`` on every evaluation split."""
        return {name: engine.predict(model, self.data[name], self.train.eval_batch_size, self.autocast)
                for name in self.eval_splits}

    def features(self) -> "Features":
        """Frozen pretrained features of every split, extracted once and shared by every cell with
        the same backbone and dataset (any seed, label fraction or strategy)."""
        full = self.features_cache(lambda: self.backbone(pretrained=True))
        return Features({**full.splits, "train": full.splits["train"][self.train_index]},
                        full.backbone_params, full.seconds_per_image)


@dataclass(frozen=True)
class Features:
    """Features of each split, the backbone's parameter count, and the extraction cost per image
    (a linear probe is charged the forward pass over its own training images)."""

    splits: dict[str, torch.Tensor]
    backbone_params: int
    seconds_per_image: float


def count_params(*modules: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters of the modules together."""
    params = {id(p): p for m in modules for p in m.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
