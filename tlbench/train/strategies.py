"""What strategies share (as peft's ``tuners_utils`` is for its tuners): parameter counts, batch-norm
handling, the classifier with only some modules trainable, training and evaluating a classifier,
seeding, the linear probe on frozen features (as a head too), and what a strategy built on
another needs (the wrapped plugin checked, the classifier it predicted with, weights mixed). A
strategy plugin imports these from here, never from another strategy or from the core's internals;
the built-in strategies do the same.

Importing this module does not import torch, so that a strategy plugin can name its options, grid
and help from here without it (``tlbench list`` imports every plugin): the functions import torch
when called, and :class:`FrozenNormStats` and :func:`batch_norms` (:mod:`tlbench.train.norms`) are
loaded on first use.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field

from tlbench.contract.errors import UserError
from tlbench.contract.options import validate
from tlbench.contract.space import LogUniform
from tlbench.contract.values import Options, Outcome

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from tlbench.contract.backbone import Classifier
    from tlbench.train.context import Features
    from tlbench.train.norms import FrozenNormStats, batch_norms  # noqa: F401

__all__ = ["ABSENT", "BN_STATS_HELP", "FINETUNE_GRID", "FINETUNE_SPACE", "FinetuneOptions", "FrozenNormStats",
           "FullFinetuneOptions", "Probe", "ProbeOptions", "batch_norms", "classifier_in", "count_params", "fine_tune",
           "fit_probe", "mixed", "seed_everything", "snapshot", "train_classifier", "train_only", "wrapped"]

#: AdamW peak learning rates around which fine-tuning pretrained weights works (and its default sweep)
FINETUNE_GRID = {"lr": [3e-4, 1e-3, 3e-3]}
#: what a search samples of fine-tuning pretrained weights
FINETUNE_SPACE = {"lr": LogUniform(3e-5, 1e-2), "weight_decay": LogUniform(1e-4, 0.3)}
#: the bias of a probe head's row for a class the training labels lack (the probe's logit: -inf)
ABSENT = -1e4

BN_STATS_HELP = ('"frozen": batch-norm layers whose parameters are frozen keep their pretrained running '
                 'statistics (eval mode while training); "update": every batch-norm layer re-estimates them')


class FinetuneOptions(Options):
    """The options of training a classifier with AdamW (warm-up, then cosine decay)."""

    lr: float = Field(1e-3, gt=0, description="peak AdamW learning rate (warm-up, then cosine decay)")
    weight_decay: float = Field(0.05, ge=0, description="AdamW weight decay")


class FullFinetuneOptions(FinetuneOptions):
    """The options of fine-tuning every weight (``finetune``, ``lp_ft``, ``l2sp``): layer-wise
    learning-rate decay and precise batch-norm statistics too."""

    layer_decay: float = Field(1.0, gt=0, le=1, description="layer-wise learning-rate decay over backbone.blocks() "
                               "(1: one rate; BEiT / MAE fine-tune ViTs at 0.65-0.75)")
    recalibrate_bn: bool = Field(True, description="before every evaluation of validation, re-estimate batch-norm "
                                 "statistics over the training data (precise BN, as scratch), so the best step is "
                                 "chosen on the model that is scored: in a short fine-tuning the running averages lag "
                                 "the weights (EfficientNet-Lite0, digits, 25%, 40 steps: 71% test without, 93% with)")


class ProbeOptions(Options):
    """The options of a linear probe: logistic regression on standardised frozen features."""

    C: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic regression (sklearn's C)")
    max_iter: int = Field(1000, gt=0, description="L-BFGS iterations")


def __getattr__(name: str):
    if name in ("FrozenNormStats", "batch_norms"):  # nn.Module code: torch is imported here
        from tlbench.train import norms

        return getattr(norms, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def count_params(*modules: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters of the modules together."""
    params = {id(p): p for m in modules for p in m.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def seed_everything(seed: int) -> None:
    """Seed every global generator a strategy may draw from (torch, numpy, ``random``): what the
    worker does before each cell, ``CellContext.run_strategy`` before each run and the conformance
    kit before each run."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def train_only(classifier: Classifier, modules: list[nn.Module]) -> Classifier:
    """``classifier`` with every weight frozen except those of ``modules`` and of its (new) head."""
    classifier.requires_grad_(False)
    for module in modules:
        module.requires_grad_(True)
    classifier.head.requires_grad_(True)
    return classifier


def train_classifier(ctx, options: FinetuneOptions, pretrained: bool, split: str = "train",
                     recalibrate_bn: bool = False) -> Outcome:
    """Train a fresh backbone (pretrained or randomly initialised) and a new head on ``split`` with
    ``options.lr`` / ``options.weight_decay``, optionally re-estimating its batch-norm statistics
    (precise BN) before every evaluation (``ctx.fit(..., recalibrate_bn=True)``), and return the
    logits of every evaluation split with the parameter counts."""
    model = ctx.classifier(pretrained=pretrained)
    ctx.fit(model, options.lr, options.weight_decay, split=split, recalibrate_bn=recalibrate_bn)
    return Outcome(ctx.predict(model), *count_params(model))


def fine_tune(ctx, model: nn.Module, options: FullFinetuneOptions, step=None) -> Outcome:
    """Train every trainable weight of ``model`` with ``options`` (``lr``, ``weight_decay``,
    ``layer_decay``, ``recalibrate_bn``; ``step``: a loss of one's own) and predict with it: the
    fine-tuning of ``finetune``, ``lp_ft`` and ``l2sp``."""
    ctx.fit(model, options.lr, options.weight_decay, layer_decay=options.layer_decay, step=step,
            recalibrate_bn=options.recalibrate_bn)
    return Outcome(ctx.predict(model), *count_params(model))


@dataclass(frozen=True)
class Probe:
    """A fitted linear probe: sklearn's ``scaler`` (StandardScaler) and ``model``
    (LogisticRegression over the classes of the training labels)."""

    scaler: Any
    model: Any

    @classmethod
    def fit(cls, features: torch.Tensor, labels: torch.Tensor, C: float = 1.0, max_iter: int = 1000) -> "Probe":
        """Standardise ``features`` (``N×D``) and fit the logistic regression to ``labels``."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        train = features.numpy()
        scaler = StandardScaler().fit(train)
        return cls(scaler, LogisticRegression(C=C, max_iter=max_iter).fit(scaler.transform(train),
                                                                          labels.cpu().numpy()))

    @property
    def size(self) -> int:
        """Its trained numbers (weights and biases)."""
        return self.model.coef_.size + self.model.intercept_.size

    def logits(self, features: torch.Tensor, num_classes: int) -> torch.Tensor:
        """``N×num_classes`` logits of frozen ``features`` (-inf for classes absent from training)."""
        import numpy as np
        import torch

        scores = self.model.decision_function(self.scaler.transform(features.numpy()))
        if scores.ndim == 1:  # two classes: sklearn gives one margin
            scores = np.stack([-scores, scores], axis=1)
        full = torch.full((len(scores), num_classes), float("-inf"))
        full[:, torch.as_tensor(self.model.classes_)] = torch.as_tensor(scores, dtype=torch.float32)
        return full

    def load_into(self, head: nn.Linear) -> None:
        """Make ``head`` (features -> logits) compute the probe on raw features: the standardisation
        folded into its weights; a class absent from training gets weight 0 and bias :data:`ABSENT`."""
        import numpy as np
        import torch

        coef, intercept = self.model.coef_, self.model.intercept_
        if len(coef) == 1:  # two classes: one margin, as logits() splits it
            coef, intercept = np.concatenate([-coef, coef]), np.concatenate([-intercept, intercept])
        weight = coef / self.scaler.scale_
        bias = intercept - weight @ self.scaler.mean_
        like = dict(dtype=head.weight.dtype, device=head.weight.device)
        classes = torch.as_tensor(self.model.classes_, device=head.weight.device)
        with torch.no_grad():
            head.weight.zero_()
            head.bias.fill_(ABSENT)
            head.weight[classes] = torch.as_tensor(weight, **like)
            head.bias[classes] = torch.as_tensor(bias, **like)


def fit_probe(ctx, options: ProbeOptions) -> tuple[Probe, Features]:
    """The linear probe fitted on the cell's frozen pretrained features (``ctx.features()``, cached),
    charged to the cell as the forward pass over its training examples plus the fit; and the features."""
    features = ctx.features()
    train = features.splits["train"]
    with ctx.clock.training(ctx.device):
        probe = Probe.fit(train, ctx.data["train"].labels, options.C, options.max_iter)
    ctx.clock.train_seconds += features.seconds_per_image * len(train)
    ctx.clock.images += len(train)
    return probe, features


def wrapped(strategies, name: str, options: dict):
    """The plugin ``name`` (``strategies(name)``: a registry lookup) that a strategy built on
    another wraps, with ``options`` validated by it; a :class:`UserError` naming ``of`` /
    ``of_options`` when it is unknown, does not declare ``finetunes_pretrained`` or rejects them."""
    try:
        record = strategies(name)
    except UserError as exc:
        raise UserError(f"of: {exc}") from None
    if not record.finetunes_pretrained:
        raise UserError(f"of = {name!r}: strategy {record.name!r} does not fine-tune from pretrained weights "
                        "(StrategyPlugin.finetunes_pretrained), so there are no fine-tuned weights to build on; "
                        "wrap e.g. finetune, lp_ft, partial_finetune, l2sp or bitfit")
    validate(record.options, options, "of_options")
    return record


def classifier_in(model: nn.Module | None) -> Classifier:
    """The :class:`Classifier` a strategy predicted with (``ctx.run_strategy``'s model): ``model``
    itself or the first inside it."""
    from tlbench.contract.backbone import Classifier

    found = next((m for m in model.modules() if isinstance(m, Classifier)), None) if model is not None else None
    if found is None:
        raise TypeError(f"the wrapped strategy predicted with {type(model).__name__}, no tlbench Classifier: "
                        "nothing to build on (does it declare finetunes_pretrained rightly?)")
    return found


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s state (parameters and buffers), on its device."""
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def mixed(states: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """The weighted sum of ``states`` (same keys and shapes), buffers included: weight interpolation
    (WiSE-FT) and averaging (soups). A weight of 1 (others 0) gives that state exactly. Integer
    tensors (batch-norm counters) are taken from the state of the largest weight."""
    first = states[0]
    for other in states[1:]:
        if {k: v.shape for k, v in other.items()} != {k: v.shape for k, v in first.items()}:
            raise TypeError("the models to mix differ in their parameters or shapes: they do not share an architecture")
    heaviest = states[max(range(len(weights)), key=weights.__getitem__)]
    return {name: sum(w * s[name] for w, s in zip(weights, states)) if first[name].is_floating_point()
            else heaviest[name].clone() for name in first}
