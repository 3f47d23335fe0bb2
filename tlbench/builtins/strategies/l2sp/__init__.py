"""L2-SP (Li, Grandvalet & Davoine, ICML 2018): fine-tuning with the pretrained weights as the
starting point *and* the centre of the regulariser.

Full fine-tuning of backbone and new head, with the loss

    task loss + alpha / 2 * ||w_backbone - w_pretrained||^2 + beta / 2 * ||w_head||^2

in place of weight decay (the optimizer's decoupled weight decay is 0): the backbone may move
where the task needs it, at a price that grows with the distance from what pretraining found.
The paper's defaults are ``alpha = 0.1``, ``beta = 0.01``; ``[train]`` options (schedule,
label smoothing, augmentation) apply as to ``finetune``, and so do ``layer_decay`` and precise
batch-norm statistics before every evaluation (``recalibrate_bn``). The task loss is the dataset's
task's own (cross-entropy for classification; a detector's loss; per-pixel cross-entropy), so L2-SP
trains every task; the head is the task's new head. The step (torch) is :mod:`.step`'s
:class:`~tlbench.builtins.strategies.l2sp.step.L2SPStep`.
"""
from __future__ import annotations

from pydantic import Field

import tlbench
from tlbench.contract.space import LogUniform
from tlbench.train.strategies import FINETUNE_GRID, FullFinetuneOptions, fine_tune


class L2SPOptions(FullFinetuneOptions):
    """finetune's options (layer_decay, recalibrate_bn too), the pull and no weight decay by default."""

    alpha: float = Field(0.1, ge=0, description="strength of the pull of the backbone towards its pretrained weights "
                                                "(alpha / 2 * squared distance)")
    beta: float = Field(0.01, ge=0, description="L2 strength on the new head's weights (beta / 2 * squared norm)")
    weight_decay: float = Field(0.0, ge=0, description="decoupled AdamW weight decay on top of the penalty "
                                                       "(L2-SP replaces it: 0)")


def run(ctx, options: L2SPOptions) -> tlbench.Outcome:
    from tlbench.builtins.strategies.l2sp.step import L2SPStep

    model = ctx.classifier(pretrained=True)
    return fine_tune(ctx, model, options, L2SPStep(ctx.task.step(model, ctx.train), options.alpha, options.beta))


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("l2sp", "fine-tune all weights with an L2 pull towards the pretrained ones "
                                   "(L2-SP, Li et al. 2018)", L2SPOptions, run, grid=FINETUNE_GRID,
                                   space={"lr": LogUniform(3e-5, 1e-2), "alpha": LogUniform(1e-3, 1.0)},
                                   finetunes_pretrained=True, tasks=tlbench.ANY_TASK)]
