"""Linear probe: logistic regression on frozen pretrained features (extracted once, cached)."""
import tlbench
from tlbench.contract.space import LogUniform
from tlbench.train.strategies import ProbeOptions, fit_probe

#: C (inverse L2 strength) and max_iter (L-BFGS iterations)
LinearProbeOptions = ProbeOptions


def run(ctx, options: LinearProbeOptions) -> tlbench.Outcome:
    probe, features = fit_probe(ctx, options)
    logits = {name: probe.logits(features.splits[name], ctx.num_classes) for name in ctx.eval_splits}
    return tlbench.Outcome(logits, probe.size, probe.size + features.backbone_params)


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("linear_probe", "logistic regression on frozen features, extracted once",
                                   LinearProbeOptions, run, grid={"C": [0.1, 1.0, 10.0]},
                                   space={"C": LogUniform(1e-3, 1e2)}, trains_steps=False)]
