"""Strategies that misbehave on purpose, loaded with --plugin in the tests."""
import torch

import tlbench
from tlbench.builtins.strategies.finetune import FinetuneOptions


def explode(ctx, options):
    raise RuntimeError("boom from a plugin")


class NaNHead(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) * float("nan")


def nan_loss(ctx, options):
    ctx.fit(NaNHead(ctx.classifier()), options.lr)
    raise AssertionError("fit should have raised Diverged")


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("explode", "raises", FinetuneOptions, explode),
            tlbench.StrategyPlugin("nan_loss", "diverges", FinetuneOptions, nan_loss)]
