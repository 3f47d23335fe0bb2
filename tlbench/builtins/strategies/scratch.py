"""The baseline every claim of transfer is measured against: same architecture, random init."""
from pydantic import Field

import tlbench
from tlbench.contract.space import LogUniform
from tlbench.train.strategies import FinetuneOptions, train_classifier


class ScratchOptions(FinetuneOptions):
    recalibrate_bn: bool = Field(True, description="before every evaluation of validation, re-estimate batch-norm "
                                 "statistics over the training data (precise BN): after a short schedule from random "
                                 "init the running averages lag the weights and evaluation can collapse to one class")


def run(ctx, options: ScratchOptions) -> tlbench.Outcome:
    return train_classifier(ctx, options, pretrained=False, recalibrate_bn=options.recalibrate_bn)


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("scratch", "the same architecture trained from random initialisation",
                                   ScratchOptions, run, grid={"lr": [1e-3, 3e-3, 1e-2]}, role="baseline",
                                   space={"lr": LogUniform(1e-4, 3e-2), "weight_decay": LogUniform(1e-4, 0.3)}, tasks=tlbench.ANY_TASK)]
