"""The baseline every claim of transfer is measured against: same architecture, random init."""
import tlbench
from tlbench.builtins.strategies.finetune import FinetuneOptions, train_classifier


def run(ctx, options: FinetuneOptions) -> tlbench.Outcome:
    return train_classifier(ctx, options, pretrained=False)


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("scratch", "the same architecture trained from random initialisation",
                                   FinetuneOptions, run, grid={"lr": [1e-3, 3e-3, 1e-2]},
                                   role="baseline")]
