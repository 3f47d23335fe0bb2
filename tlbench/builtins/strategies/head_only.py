"""The pretrained backbone frozen, the task's new head trained: the linear probe's counterpart for
every task. For classification the head is the linear layer (trained by AdamW on augmented batches
where the probe fits a logistic regression on cached features); for detection it is the feature
pyramid network and the detector's heads, for segmentation the LR-ASPP head, on features that
do not move. Batch-norm layers of the backbone keep their pretrained statistics."""
from __future__ import annotations

from pydantic import Field

import tlbench
from tlbench.contract.space import LogUniform
from tlbench.train.strategies import count_params, train_only

#: a new head alone takes larger steps than fine-tuning pretrained weights
GRID = {"lr": [1e-3, 3e-3, 1e-2]}


class HeadOnlyOptions(tlbench.Options):
    lr: float = Field(3e-3, gt=0, description="peak AdamW learning rate of the head (warm-up, then cosine decay)")
    weight_decay: float = Field(0.05, ge=0, description="AdamW weight decay of the head")


def run(ctx, options: HeadOnlyOptions) -> tlbench.Outcome:
    from tlbench.train.strategies import FrozenNormStats, batch_norms

    model = train_only(ctx.classifier(pretrained=True), [])
    ctx.fit(FrozenNormStats(model, batch_norms(model.backbone)), options.lr, options.weight_decay)
    return tlbench.Outcome(ctx.predict(model), *count_params(model))


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("head_only", "the pretrained backbone frozen and the task's new head trained "
                                   "(the probe's counterpart for detection and segmentation heads)",
                                   HeadOnlyOptions, run, grid=GRID,
                                   space={"lr": LogUniform(3e-4, 3e-2), "weight_decay": LogUniform(1e-4, 0.3)},
                                   tasks=tlbench.ANY_TASK)]
