"""DANN: domain-adversarial training (Ganin & Lempitsky, ICML 2015; Ganin et al., JMLR 2016).

A feature extractor (the pretrained backbone), a label classifier (a new linear head) and a domain
discriminator (an MLP ``feature_dim -> hidden -> hidden -> 1`` with ReLU and dropout, the paper's
``1024-1024`` for large networks) sit behind a gradient-reversal layer: identity forward,
``-lambda * gradient`` backward. Each step takes a labelled source batch (``data["train"]``) and an
equally large *unlabelled* target batch (``data["target_train"]``; its labels are never read),
joined in one forward pass through the backbone so that batch normalisation sees both domains, as
in the paper's implementations (by the join rule of the backbone's modality,
:class:`tlbench.Modality`). The loss is

    cross-entropy(head(f_source), y_source) + BCE(discriminator(GRL(f)), domain)

over both domains (source 0, target 1); the reversal makes the features fool the discriminator
while it learns to tell the domains apart. The paper's schedules, with training progress
``p = step / steps`` going from 0 to 1 over the run's steps (``iterations``, as the paper and
TLlib size their runs, e.g. TLlib's 20 x 1000; default ``ctx.steps()``, from ``[train]``):

* reversal weight ``lambda_p = lambda_max * (2 / (1 + exp(-gamma * p)) - 1)``, ``gamma = 10``:
  the noisy discriminator is ignored early, then the adversarial signal grows to ``lambda_max``;
* learning rate ``mu_p = mu_0 / (1 + alpha * p) ** beta``, ``alpha = 10``, ``beta = 0.75``
  (``lr_schedule = "dann"``), or warm-up + cosine (``"cosine"``).

As in the paper's fine-tuning of pretrained networks, the backbone learns at ``backbone_lr_mult``
times the rate of the layers trained from scratch (head and discriminator). The optimizer defaults
to AdamW (the paper used SGD with momentum 0.9, ``optimizer = "sgd"``): with the short schedules
of a benchmark, AdamW trained both the classifier and the adversary better in our runs.

The reversal weight is held in a tensor buffer of the step, updated in place between steps, so a
compiled step (``[train] compile = true``) is traced once, not once per value of lambda.

``dann_source_only`` is DANN's own control (role ``baseline``): the same model, recipe, schedules,
grid and joint source + target batches (batch norm sees both domains), with ``lambda_max = 0``,
so that no gradient of the domain loss reaches the backbone. DANN minus this control is what
the adversary itself adds; this control minus ``finetune`` is what the recipe and the shared
batch-norm statistics add.

Reported: ``trainable_params`` counts backbone, head and discriminator (all trained; the
discriminator is dropped for inference); ``extra["domain_acc"]`` is the discriminator's balanced
accuracy on held-out source (val + test) against target (val + test) images after training:
near 0.5 means the features no longer tell the domains apart. ``clock.images`` counts source and
target images, since both go through the forward and backward pass.

The modules, the target batches and the step (torch) are in :mod:`.modules`, imported by
:func:`train`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import Field, create_model

import tlbench
from tlbench.contract.space import LogUniform
from tlbench.train.strategies import count_params

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from tlbench.builtins.strategies.dann.modules import DannModel

#: AdamW with the paper's annealing; new layers (head, discriminator) at ``lr``, the pretrained
#: backbone at a tenth, so the backbone sees 1e-4..1e-3, the range that suits fine-tuning. In a
#: quick pretrained EfficientNet-Lite0 run (toy digits -> colour-background digits, 300 steps)
#: AdamW beat SGD-momentum at every lr tried, and the adversarial gain grew with lr up to 1e-2.
GRID = {"lr": [1e-3, 3e-3, 1e-2]}

#: weight decay when the option is left out: decoupled (AdamW) or L2 (SGD, as the paper).
DEFAULT_WEIGHT_DECAY = {"adamw": 0.05, "sgd": 1e-3}


class DannOptions(tlbench.Options):
    lr: float = Field(3e-3, gt=0, description="initial learning rate mu_0 of head and discriminator (the backbone "
                                              "gets lr * backbone_lr_mult); SGD wants a larger one (the paper: 0.01)")
    backbone_lr_mult: float = Field(0.1, gt=0, le=1, description="the pretrained backbone's learning rate as a "
                                                                  "fraction of lr")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description='"adamw", or "sgd" with momentum 0.9 as in '
                                                                    'the paper')
    weight_decay: float | None = Field(None, ge=0, description="weight decay; default 0.05 with AdamW (decoupled), "
                                                               "1e-3 with SGD (L2)")
    lr_schedule: Literal["dann", "cosine"] = Field("dann", description='"dann": mu_0 / (1 + anneal_alpha * p) ** '
                                                   'anneal_beta; "cosine": 5% linear warm-up then cosine decay')
    anneal_alpha: float = Field(10.0, ge=0, description="alpha of the dann learning-rate annealing")
    anneal_beta: float = Field(0.75, ge=0, description="beta of the dann learning-rate annealing")
    lambda_max: float = Field(1.0, ge=0, description="final weight of the reversed domain gradient "
                                                     "(0: no adaptation, source-only training)")
    gamma: float = Field(10.0, gt=0, description="steepness of lambda_p = lambda_max * (2 / (1 + exp(-gamma p)) - 1)")
    iterations: int | None = Field(None, ge=1, description="training steps, as the paper and TLlib size a run "
                                                           "(progress p = step / iterations; times [train] budget); "
                                                           "default: [train] epochs over the labelled source, at "
                                                           "least min_steps")
    hidden: int = Field(1024, ge=1, description="width of the discriminator's two hidden layers")
    disc_dropout: float = Field(0.5, ge=0, lt=1, description="dropout after each hidden layer of the discriminator")


def lambda_schedule(p: float, lambda_max: float = 1.0, gamma: float = 10.0) -> float:
    """The paper's reversal weight at progress ``p`` in [0, 1]."""
    return lambda_max * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


def dann_lr_factor(p: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    """The paper's learning-rate annealing factor ``1 / (1 + alpha p) ** beta``."""
    return (1.0 + alpha * p) ** -beta


def make_optimizer(ctx, model: DannModel, options: DannOptions, steps: int):
    """The context's optimizer over two parameter groups (backbone at ``backbone_lr_mult`` of
    ``lr``) with the paper's annealing or warm-up + cosine."""
    groups = [{"params": list(model.backbone.parameters()), "lr": options.lr * options.backbone_lr_mult},
              {"params": list(model.head.parameters()) + list(model.discriminator.parameters()), "lr": options.lr}]
    decay = DEFAULT_WEIGHT_DECAY[options.optimizer] if options.weight_decay is None else options.weight_decay
    schedule = None
    if options.lr_schedule == "dann":
        schedule = lambda p: dann_lr_factor(p, options.anneal_alpha, options.anneal_beta)  # noqa: E731
    return ctx.optimizer(groups, options.lr, decay, steps, kind=options.optimizer, schedule=schedule)


def train(ctx, options: DannOptions) -> DannModel:
    """Adversarial training of a fresh pretrained backbone, head and discriminator on ``ctx``."""
    from tlbench.builtins.strategies.dann.modules import DannModel, DannStep, DomainDiscriminator, Unlabelled

    classifier = ctx.classifier(pretrained=True)
    model = DannModel(classifier, DomainDiscriminator(classifier.backbone.feature_dim, options.hidden,
                                                      options.disc_dropout).to(ctx.device))
    steps = ctx.budgeted(options.iterations) if options.iterations else ctx.steps("train")
    opt, schedule = make_optimizer(ctx, model, options, steps)
    ctx.train_loop(DannStep(model, Unlabelled(ctx), options), opt, schedule, steps)
    return model


def evaluate(ctx, model: DannModel) -> tuple[dict[str, torch.Tensor], float]:
    """Class logits of every evaluation split and the discriminator's balanced held-out accuracy."""
    import torch

    out = ctx.predict(model)
    logits = {name: o[:, :ctx.num_classes] for name, o in out.items()}
    source = torch.cat([out[s][:, -1] for s in ("val", "test") if s in out])
    target = torch.cat([out[s][:, -1] for s in ("target_val", "target_test") if s in out])
    domain_acc = 0.5 * ((source < 0).float().mean() + (target > 0).float().mean()).item()
    return logits, domain_acc


def run(ctx, options: DannOptions) -> tlbench.Outcome:
    model = train(ctx, options)
    logits, domain_acc = evaluate(ctx, model)
    return tlbench.Outcome(logits, *count_params(model), extra={"domain_acc": domain_acc})


#: the control's options: DANN's, less the adversary's weight and its schedule
SourceOnlyOptions = create_model("DannSourceOnlyOptions", __base__=tlbench.Options,
                                 **{name: (info.annotation, info) for name, info in DannOptions.model_fields.items()
                                    if name not in ("lambda_max", "gamma")})


def run_source_only(ctx, options) -> tlbench.Outcome:
    """DANN with ``lambda_max = 0``: its recipe and joint batches without the adversary."""
    return run(ctx, DannOptions(**options.model_dump(), lambda_max=0.0))


@tlbench.hookimpl
def tlbench_strategies():
    lr = {"lr": LogUniform(1e-4, 3e-2)}
    return [tlbench.StrategyPlugin("dann", "domain-adversarial training (DANN): fine-tune with a gradient-reversed "
                                   "domain discriminator on unlabelled target images", DannOptions, run,
                                   needs_target_domain=True, grid=GRID, role="adaptation",
                                   space={**lr, "lambda_max": LogUniform(0.1, 1.0)}),
            tlbench.StrategyPlugin("dann_source_only", "DANN's own source-only control: its recipe, schedules and "
                                   "joint source + target batches with lambda_max = 0 (no adversarial gradient)",
                                   SourceOnlyOptions, run_source_only, needs_target_domain=True, grid=GRID,
                                   role="baseline", space=lr)]
