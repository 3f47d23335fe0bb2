"""Partial fine-tuning: train the top ``k`` blocks of the pretrained backbone and a new head.

The blocks are the backbone's own ``blocks()`` (input to output), so this works for any backbone:
timm models group their stages as timm's layer-wise LR decay does (a convnet's stem, its stages,
the head conv joined to the last; a ViT's patch embedding, then each transformer block), and the
tiny CNN gives its three conv blocks.

Batch normalisation in the frozen part keeps its pretrained running statistics (the layers run in
eval mode while the top blocks train): *frozen* then means that the lower network computes exactly
the function it computed before training, as a feature extractor does, and only the parameters
counted as trainable change. This is the usual practice for frozen stages (e.g. detectron2's
FrozenBatchNorm). ``bn_stats = "update"`` lets every BN layer re-estimate its statistics on the
target data instead (an AdaBN-like effect that a few extra buffers buy).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

import tlbench
from tlbench.contract.space import LogUniform
from tlbench.contract.errors import UserError
from tlbench.train.strategies import BN_STATS_HELP, FINETUNE_GRID, count_params, train_only

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

#: The top blocks are pretrained weights being adapted, like full fine-tuning, so the same AdamW
#: range as ``finetune``; the new head trains with them at the same rate.
GRID = FINETUNE_GRID


class PartialFinetuneOptions(tlbench.Options):
    k: int = Field(2, ge=1, description="number of top backbone blocks (backbone.blocks(), counted from the "
                                        "output) trained with the head; the rest stays frozen")
    lr: float = Field(1e-3, gt=0, description="peak AdamW learning rate (warm-up, then cosine decay)")
    weight_decay: float = Field(0.05, ge=0, description="AdamW weight decay")
    bn_stats: Literal["frozen", "update"] = Field("frozen", description=BN_STATS_HELP)
    layer_decay: float = Field(1.0, gt=0, le=1, description="layer-wise learning-rate decay over the trained blocks "
                               "(the head at lr, the top block at lr * layer_decay, the next at its square, ...)")


def top_blocks(backbone, k: int) -> list[nn.Module]:
    """The last ``k`` of ``backbone.blocks()``; a :class:`UserError` when there are fewer."""
    blocks = backbone.blocks()
    if k > len(blocks):
        raise UserError(f"partial_finetune: k = {k} but the backbone {type(backbone).__name__} has only "
                        f"{len(blocks)} blocks; choose k between 1 and {len(blocks)}")
    return blocks[len(blocks) - k:]


def build_model(ctx, options: PartialFinetuneOptions) -> tuple[nn.Module, nn.Module]:
    """(model to train, the Classifier inside it) with only the top ``k`` blocks and the head trainable."""
    from tlbench.train.strategies import FrozenNormStats, batch_norms

    classifier = ctx.classifier(pretrained=True)
    trained = top_blocks(classifier.backbone, options.k)
    train_only(classifier, trained)
    if options.bn_stats == "update":
        return classifier, classifier
    inside = {id(m) for block in trained for m in block.modules()}
    frozen = [m for m in batch_norms(classifier.backbone) if id(m) not in inside]
    return FrozenNormStats(classifier, frozen), classifier


def run(ctx, options: PartialFinetuneOptions) -> tlbench.Outcome:
    model, classifier = build_model(ctx, options)
    ctx.fit(model, options.lr, options.weight_decay, layer_decay=options.layer_decay)
    return tlbench.Outcome(ctx.predict(classifier), *count_params(classifier))


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("partial_finetune", "train the top k backbone blocks and a new head; "
                                   "the rest stays frozen", PartialFinetuneOptions, run, grid=GRID,
                                   space={"lr": LogUniform(3e-5, 1e-2), "weight_decay": LogUniform(1e-4, 0.3)})]
