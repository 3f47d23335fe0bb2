"""Partial and surgical fine-tuning: train some blocks of the pretrained backbone and a new head.

The blocks are the backbone's own ``blocks()`` (input to output), so this works for any backbone:
timm models group their stages as timm's layer-wise LR decay does (a convnet's stem, its stages,
the head conv joined to the last; a ViT's patch embedding, then each transformer block), and the
tiny CNN gives its three conv blocks. ``blocks`` chooses which (surgical fine-tuning, Lee et al.,
ICLR 2023: the first blocks for an input-level shift such as corruptions, the last for a shift of
the labels): ``"top"`` the last ``k`` (the default, the paper's "last"), ``"first"`` the first
``k``, ``"middle"`` ``k`` in the middle, a list of block indices exactly those, and ``"auto"`` all
of them with Auto-RGN's learning rates (:class:`AutoRGN`).

Batch normalisation in the frozen part keeps its pretrained running statistics (the layers run in
eval mode while the chosen blocks train): *frozen* then means that the rest of the network
computes exactly the function it computed before training, as a feature extractor does, and only
the parameters counted as trainable change. This is the usual practice for frozen stages (e.g.
detectron2's FrozenBatchNorm). ``bn_stats = "update"`` lets every BN layer re-estimate its
statistics on the target data instead (an AdaBN-like effect that a few extra buffers buy).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

import tlbench
from tlbench.contract.errors import UserError
from tlbench.train.strategies import BN_STATS_HELP, FINETUNE_GRID, FINETUNE_SPACE, count_params, train_only

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

#: The chosen blocks are pretrained weights being adapted, like full fine-tuning, so the same AdamW
#: range as ``finetune``; the new head trains with them at the same rate.
GRID = FINETUNE_GRID


class PartialFinetuneOptions(tlbench.Options):
    omitted_at = {"blocks": "top"}  # added in 0.4: the cells of partial_finetune before keep their ids

    k: int = Field(2, ge=1, description="number of backbone blocks (backbone.blocks()) trained with the head, "
                                        "placed by blocks = top / first / middle (a list or auto ignores it); "
                                        "the rest stays frozen")
    lr: float = Field(1e-3, gt=0, description="peak AdamW learning rate (warm-up, then cosine decay)")
    weight_decay: float = Field(0.05, ge=0, description="AdamW weight decay")
    bn_stats: Literal["frozen", "update"] = Field("frozen", description=BN_STATS_HELP)
    layer_decay: float = Field(1.0, gt=0, le=1, description="layer-wise learning-rate decay over the trained blocks "
                               "(the head at lr, the top block at lr * layer_decay, the next at its square, ...)")
    blocks: Literal["top", "first", "middle", "auto"] | list[int] = Field(
        "top", description='which blocks train (surgical fine-tuning): "top" the last k, "first" the first k, '
                           '"middle" k in the middle, a list of block indices (0: the input side) exactly those, '
                           '"auto" all of them at Auto-RGN learning rates (each block\'s lr scaled at every step by '
                           'its relative gradient norm |g|/|w| over the largest; Lee et al. 2023)')

    @field_validator("blocks")
    @classmethod
    def _indices(cls, blocks):
        if isinstance(blocks, list) and (not blocks or min(blocks) < 0):
            raise ValueError(f"a list of block indices needs at least one, each 0 or more (got {blocks})")
        return blocks

    @model_validator(mode="after")
    def _auto_sets_the_rates(self):
        if self.blocks == "auto" and self.layer_decay != 1.0:
            raise ValueError('blocks = "auto" sets each block\'s learning rate itself; leave layer_decay out')
        return self


def chosen_blocks(backbone, options: PartialFinetuneOptions) -> list[nn.Module]:
    """The blocks of ``backbone.blocks()`` that ``options.blocks`` (and ``k``) choose; a
    :class:`UserError` when the backbone has fewer blocks than that needs."""
    blocks, name = backbone.blocks(), type(backbone).__name__
    if options.blocks == "auto":
        return blocks
    if isinstance(options.blocks, list):
        if max(options.blocks) >= len(blocks):
            raise UserError(f"partial_finetune: blocks = {options.blocks} but the backbone {name} has only "
                            f"{len(blocks)} blocks; give indices between 0 and {len(blocks) - 1}")
        return [blocks[i] for i in sorted(set(options.blocks))]
    k = options.k
    if k > len(blocks):
        raise UserError(f"partial_finetune: k = {k} but the backbone {name} has only "
                        f"{len(blocks)} blocks; choose k between 1 and {len(blocks)}")
    start = {"top": len(blocks) - k, "first": 0, "middle": (len(blocks) - k) // 2}[options.blocks]
    return blocks[start:start + k]


def build_model(ctx, options: PartialFinetuneOptions) -> tuple[nn.Module, nn.Module]:
    """(model to train, the Classifier inside it) with only the chosen blocks and the head trainable."""
    from tlbench.train.strategies import FrozenNormStats, batch_norms

    classifier = ctx.classifier(pretrained=True)
    trained = chosen_blocks(classifier.backbone, options)
    train_only(classifier, trained)
    if options.bn_stats == "update":
        return classifier, classifier
    inside = {id(m) for block in trained for m in block.modules()}
    frozen = [m for m in batch_norms(classifier.backbone) if id(m) not in inside]
    return FrozenNormStats(classifier, frozen), classifier


class AutoRGN:
    """Auto-RGN (Lee et al., ICLR 2023) around an optimizer: at every step each block's learning rate
    is scaled by its relative gradient norm ``|g| / |w|`` (over the block's parameters) divided by
    the largest among the blocks; groups without a ``block`` index (the new head) keep the full
    rate. ``scales`` holds the last step's factors."""

    def __init__(self, optimizer: torch.optim.Optimizer, blocks: list[nn.Module]):
        self.optimizer, self.blocks = optimizer, blocks
        self.scales = [1.0] * len(blocks)

    def relative_gradient_norms(self) -> torch.Tensor:
        """``|g| / |w|`` of each block (a block without gradients: 0), on the CPU (one device sync)."""
        import torch

        def norm(tensors):
            return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.float()) for t in tensors]))
        device = self.optimizer.param_groups[0]["params"][0].device
        rgn = []
        with torch.no_grad():
            for block in self.blocks:
                params = [p for p in block.parameters() if p.grad is not None]
                rgn.append(norm([p.grad for p in params]) / norm(params).clamp_min(1e-12) if params
                           else torch.zeros((), device=device))
            return torch.stack(rgn).cpu()

    def step(self) -> None:
        rgn = self.relative_gradient_norms()
        top = rgn.max().item()
        self.scales = (rgn / top).tolist() if top > 0 else [1.0] * len(self.blocks)
        groups = self.optimizer.param_groups
        rates = [group["lr"] for group in groups]
        for group in groups:
            if "block" in group:
                group["lr"] *= self.scales[group["block"]]
        self.optimizer.step()
        for group, rate in zip(groups, rates):
            group["lr"] = rate

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)


def rgn_groups(classifier: nn.Module, weight_decay: float) -> list[dict]:
    """Optimizer groups of ``classifier``: per block of its backbone (tagged ``block``: its index)
    and the rest (the head), each split into weight matrices with weight decay and 1-d tensors
    (biases, norms) without, as timm does."""
    blocks = classifier.backbone.blocks()
    inside = {id(p) for block in blocks for p in block.parameters()}
    parts = [(block.parameters(), {"block": i}) for i, block in enumerate(blocks)]
    parts.append(([p for p in classifier.parameters() if id(p) not in inside], {}))
    groups = []
    for params, tag in parts:
        params = list(params)
        for decays in (True, False):
            chosen = [p for p in params if p.requires_grad and (p.ndim > 1) == decays]
            if chosen:
                groups.append({"params": chosen, "weight_decay": weight_decay if decays else 0.0, **tag})
    return groups


def run(ctx, options: PartialFinetuneOptions) -> tlbench.Outcome:
    model, classifier = build_model(ctx, options)
    if options.blocks == "auto":
        steps = ctx.steps()
        opt, schedule = ctx.optimizer(rgn_groups(classifier, options.weight_decay), options.lr,
                                      options.weight_decay, steps)
        ctx.train_loop(ctx.task.step(model, ctx.train),
                       AutoRGN(opt, classifier.backbone.blocks()), schedule, steps)
    else:
        ctx.fit(model, options.lr, options.weight_decay, layer_decay=options.layer_decay)
    return tlbench.Outcome(ctx.predict(classifier), *count_params(classifier))


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("partial_finetune", "train some backbone blocks (the top k by default; first, "
                                   "middle, chosen ones, or all at Auto-RGN rates) and a new head; the rest stays "
                                   "frozen", PartialFinetuneOptions, run, grid=GRID, space=FINETUNE_SPACE,
                                   finetunes_pretrained=True, tasks=tlbench.ANY_TASK)]
