"""LoRA (Hu et al. 2021) through peft: low-rank adapters on the backbone's chosen layers and a new
full head train; every pretrained weight stays frozen.

The adapted layers default to the backbone's ``lora_targets`` (timm: a ViT's attention
projections, a convnet's pointwise 1x1 convolutions; the tiny CNN: its last two convolutions).
After training the adapters are merged into the weights (``merge_and_unload``) and the merged
model is what is evaluated: the deployable model, with the inference cost of the plain backbone.
``trainable_params`` counts the LoRA matrices and the head; ``total_params`` the frozen backbone,
the adapters and the head.

Batch-norm layers (all frozen here) keep their pretrained running statistics by default (see
``partial_finetune``), so that the merged model is exactly "pretrained weights + low-rank deltas".
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator
from torch import nn

import tlbench
from tlbench.space import LogUniform
from tlbench.errors import UserError
from tlbench.strategies import BN_STATS_HELP, FrozenNormStats, batch_norms, count_params

#: LoRA trains small zero-initialised deltas and a fresh head: it needs a learning rate several
#: times that of full fine-tuning (peft's ViT image-classification recipe uses 5e-3 with AdamW;
#: 3e-4 barely moves the adapters in a short run). Centred on 3e-3.
GRID = {"lr": [1e-3, 3e-3, 1e-2]}


class LoraOptions(tlbench.Options):
    r: int = Field(8, ge=1, le=1024, description="rank of each low-rank update")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator: the update is (alpha / r) * B @ A")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the input of each LoRA branch")
    target_modules: list[str] | None = Field(
        None, description="backbone module names to adapt (exact names, or suffixes such as \"qkv\"); default: "
                          "the backbone's lora_targets (ViT attention projections, convnet 1x1 convolutions)")
    lr: float = Field(3e-3, gt=0, description="peak AdamW learning rate of adapters and head (warm-up, then cosine)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay of adapters and head")
    bn_stats: Literal["frozen", "update"] = Field("frozen", description=BN_STATS_HELP)

    @field_validator("target_modules")
    @classmethod
    def _non_empty(cls, names):
        if names is not None and (not names or not all(n.strip() for n in names)):
            raise ValueError("give at least one non-empty module name, or leave target_modules out")
        return names


def resolve_targets(backbone: nn.Module, wanted) -> list[str]:
    """Backbone module names that ``wanted`` designates.

    ``wanted`` is a list of names, each an exact module name or a suffix after a dot (peft's
    rule); the string ``"all-linear"`` (every ``nn.Linear``); or another string, a regular
    expression matched in full against the names.
    """
    named = [(n, m) for n, m in backbone.named_modules() if n]
    if wanted == "all-linear":
        found = [n for n, m in named if isinstance(m, nn.Linear)]
        if not found:
            raise UserError(f"lora: the backbone {type(backbone).__name__} has no nn.Linear layer to adapt; "
                            "set target_modules")
        return found
    if isinstance(wanted, str):
        found = [n for n, _ in named if re.fullmatch(wanted, n)]
        if not found:
            raise UserError(f"lora: the pattern {wanted!r} matches no module of the backbone; set target_modules")
        return found
    found: list[str] = []
    for target in wanted:
        hits = [n for n, _ in named if n == target or n.endswith("." + target)]
        if not hits:
            close = [n for n, _ in named if target.split(".")[-1] in n.split(".")][:3]
            hint = f" (modules like it: {', '.join(close)})" if close else ""
            raise UserError(f"lora: target_modules entry {target!r} names no module of the backbone "
                            f"{type(backbone).__name__}{hint}")
        found += [h for h in hits if h not in found]
    return found


def build_model(ctx, options: LoraOptions):
    """A pretrained classifier wrapped by peft: LoRA adapters and the head trainable, the rest frozen."""
    import peft  # imported here: peft pulls in transformers, slow to import for other strategies

    classifier = ctx.classifier(pretrained=True)
    wanted = options.target_modules if options.target_modules is not None else classifier.backbone.lora_targets
    targets = ["backbone." + n for n in resolve_targets(classifier.backbone, wanted)]
    config = peft.LoraConfig(r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout,
                             target_modules=targets, bias="none")
    try:
        model = peft.get_peft_model(classifier, config)
    except ValueError as exc:  # e.g. a module type LoRA does not support
        raise UserError(f"lora: {' '.join(str(exc).split())[:300]}") from None
    classifier.head.requires_grad_(True)  # the new head trains in full (peft froze it)
    return model


def fit(ctx, model: nn.Module, options: LoraOptions) -> None:
    """Train the adapters and the head; frozen batch-norm layers keep their statistics unless
    ``bn_stats = "update"``."""
    if options.bn_stats == "frozen":
        model = FrozenNormStats(model, batch_norms(model))
    ctx.fit(model, options.lr, options.weight_decay)


def run(ctx, options: LoraOptions) -> tlbench.Outcome:
    model = build_model(ctx, options)
    trainable, total = count_params(model)
    fit(ctx, model, options)
    adapter = {name: p for name, p in model.named_parameters() if p.requires_grad}  # the LoRA matrices, the head
    merged = model.merge_and_unload()  # evaluate what one would deploy: W + (alpha / r) B A
    return tlbench.Outcome(ctx.predict(merged, adapter=adapter), trainable, total)


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("lora", "low-rank adapters (peft) on the backbone's attention projections or "
                                   "1x1 convolutions and a new head; merged for evaluation", LoraOptions, run,
                                   grid=GRID, space={"lr": LogUniform(1e-4, 3e-2), "weight_decay": LogUniform(1e-4, 0.3)})]
