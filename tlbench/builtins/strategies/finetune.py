"""Full fine-tuning: every weight of the pretrained backbone and a new head train together,
optionally with layer-wise learning-rate decay (``layer_decay``: the head at ``lr``, the
backbone's top block at ``lr * layer_decay``, the next at ``lr * layer_decay**2``, ...)."""
from pydantic import Field

import tlbench
from tlbench.train import strategies
from tlbench.contract.space import LogUniform
from tlbench.train.strategies import FINETUNE_GRID as GRID
from tlbench.train.strategies import count_params


class FinetuneOptions(strategies.FinetuneOptions):
    layer_decay: float = Field(1.0, gt=0, le=1, description="layer-wise learning-rate decay over backbone.blocks() "
                               "(1: one rate; BEiT / MAE fine-tune ViTs at 0.65-0.75)")
    recalibrate_bn: bool = Field(True, description="before every evaluation of validation, re-estimate batch-norm "
                                 "statistics over the training data (precise BN, as scratch), so the best step is "
                                 "chosen on the model that is scored: in a short fine-tuning the running averages lag "
                                 "the weights (EfficientNet-Lite0, digits, 25%, 40 steps: 71% test without, 93% with)")


def run(ctx, options: FinetuneOptions) -> tlbench.Outcome:
    model = ctx.classifier(pretrained=True)
    ctx.fit(model, options.lr, options.weight_decay, layer_decay=options.layer_decay,
            recalibrate_bn=options.recalibrate_bn)
    return tlbench.Outcome(ctx.predict(model), *count_params(model))


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("finetune", "train all weights from the pretrained ones, with a new head",
                                   FinetuneOptions, run, grid=GRID,
                                   space={"lr": LogUniform(3e-5, 1e-2), "weight_decay": LogUniform(1e-4, 0.3)})]
