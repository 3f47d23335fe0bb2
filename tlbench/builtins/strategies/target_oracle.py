"""The domain-adaptation upper reference: fine-tune on the *labelled target* training split.

It uses target labels that no adaptation method may see, so it bounds what adaptation can reach;
reports label it as an oracle."""
import tlbench
from tlbench.contract.space import LogUniform
from tlbench.train.strategies import FINETUNE_GRID, FinetuneOptions, train_classifier


def run(ctx, options: FinetuneOptions) -> tlbench.Outcome:
    """Trained on the cell's label budget of target training labels and selected on target
    validation (its val_acc is target validation accuracy)."""
    return train_classifier(ctx, options, pretrained=True, split=ctx.labelled("target_train"))


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("target_oracle", "ORACLE: fine-tune on labelled target-domain data",
                                   FinetuneOptions, run, needs_target_domain=True, grid=FINETUNE_GRID,
                                   space={"lr": LogUniform(3e-5, 1e-2), "weight_decay": LogUniform(1e-4, 0.3)},
                                   role="oracle", select_on="target_val")]
