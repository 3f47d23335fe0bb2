"""Full fine-tuning: every weight of the pretrained backbone and a new head train together."""
import tlbench
from tlbench.space import LogUniform
from tlbench.strategies import FINETUNE_GRID as GRID
from tlbench.strategies import FinetuneOptions, train_classifier


def run(ctx, options: FinetuneOptions) -> tlbench.Outcome:
    return train_classifier(ctx, options, pretrained=True)


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("finetune", "train all weights from the pretrained ones, with a new head",
                                   FinetuneOptions, run, grid=GRID,
                                   space={"lr": LogUniform(3e-5, 1e-2), "weight_decay": LogUniform(1e-4, 0.3)})]
