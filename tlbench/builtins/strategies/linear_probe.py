"""Linear probe: logistic regression on frozen pretrained features (extracted once, cached)."""
import numpy as np
from pydantic import Field

import tlbench
from tlbench.contract.space import LogUniform


class LinearProbeOptions(tlbench.Options):
    C: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic regression (sklearn's C)")
    max_iter: int = Field(1000, gt=0, description="L-BFGS iterations")


def run(ctx, options: LinearProbeOptions) -> tlbench.Outcome:
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    features = ctx.features()
    train = features.splits["train"].numpy()
    labels = ctx.data["train"].labels.cpu().numpy()
    with ctx.clock.training(ctx.device):
        scaler = StandardScaler().fit(train)
        head = LogisticRegression(C=options.C, max_iter=options.max_iter).fit(scaler.transform(train), labels)
    ctx.clock.train_seconds += features.seconds_per_image * len(train)
    ctx.clock.images += len(train)
    logits = {}
    for name in ctx.eval_splits:
        scores = head.decision_function(scaler.transform(features.splits[name].numpy()))
        if scores.ndim == 1:  # two classes: sklearn gives one margin
            scores = np.stack([-scores, scores], axis=1)
        full = torch.full((len(scores), ctx.num_classes), float("-inf"))  # classes absent from train
        full[:, torch.as_tensor(head.classes_)] = torch.as_tensor(scores, dtype=torch.float32)
        logits[name] = full
    trainable = head.coef_.size + head.intercept_.size
    return tlbench.Outcome(logits, trainable, trainable + features.backbone_params)


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("linear_probe", "logistic regression on frozen features, extracted once",
                                   LinearProbeOptions, run, grid={"C": [0.1, 1.0, 10.0]},
                                   space={"C": LogUniform(1e-3, 1e2)}, trains_steps=False)]
