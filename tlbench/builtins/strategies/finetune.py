"""Full fine-tuning: every weight of the pretrained backbone and a new head train together,
optionally with layer-wise learning-rate decay (``layer_decay``: the head at ``lr``, the
backbone's top block at ``lr * layer_decay``, the next at ``lr * layer_decay**2``, ...)."""
import tlbench
from tlbench.train.strategies import FINETUNE_GRID as GRID
from tlbench.train.strategies import FINETUNE_SPACE, FullFinetuneOptions, fine_tune

#: lr, weight_decay, layer_decay, recalibrate_bn
FinetuneOptions = FullFinetuneOptions


def run(ctx, options: FinetuneOptions) -> tlbench.Outcome:
    return fine_tune(ctx, ctx.classifier(pretrained=True), options)


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("finetune", "train all weights from the pretrained ones, with a new head",
                                   FinetuneOptions, run, grid=GRID, space=FINETUNE_SPACE, finetunes_pretrained=True, tasks=tlbench.ANY_TASK)]
