"""Full fine-tuning: every weight of the pretrained backbone and a new head train together."""
from pydantic import Field

import tlbench
from tlbench.context import count_params


GRID = {"lr": [3e-4, 1e-3, 3e-3]}


class FinetuneOptions(tlbench.Options):
    lr: float = Field(1e-3, gt=0, description="peak AdamW learning rate (warm-up, then cosine decay)")
    weight_decay: float = Field(0.05, ge=0, description="AdamW weight decay")


def train_classifier(ctx, options: FinetuneOptions, pretrained: bool, split: str = "train",
                     recalibrate_bn: bool = False) -> tlbench.Outcome:
    """Train backbone + head on ``split``; shared by finetune, scratch and target_oracle."""
    model = ctx.classifier(pretrained=pretrained)
    ctx.fit(model, options.lr, options.weight_decay, split=split)
    if recalibrate_bn:
        ctx.recalibrate_batch_norm(model, split)
    return tlbench.Outcome(ctx.predict(model), *count_params(model))


def run(ctx, options: FinetuneOptions) -> tlbench.Outcome:
    return train_classifier(ctx, options, pretrained=True)


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("finetune", "train all weights from the pretrained ones, with a new head",
                                   FinetuneOptions, run, grid=GRID)]
