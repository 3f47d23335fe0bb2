"""BitFit (Ben Zaken, Ravfogel & Goldberg, ACL 2022): fine-tune only the bias terms of the pretrained
backbone, and a new head.

Every parameter named ``bias`` trains (convolution, linear and normalisation layers alike, as in
the paper's code, which selects parameters by the name ``bias``); every other pretrained weight
stays frozen. Batch-norm layers keep their pretrained running statistics by default (see
``partial_finetune``). Nothing is added: the trained model has the backbone's size and inference
cost, and only the biases and the head differ from the pretrained model (a few per mille of the
weights). ``trainable_params`` counts the biases and the head.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

import tlbench
from tlbench.contract.space import LogUniform
from tlbench.train.strategies import count_params

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

#: Biases move little per step: BitFit's recipes use learning rates around 1e-3 (the paper sweeps
#: 1e-4 .. 1e-3 on GLUE), above full fine-tuning's; the head is new and wants as much.
GRID = {"lr": [1e-3, 3e-3, 1e-2]}


class BitFitOptions(tlbench.Options):
    lr: float = Field(3e-3, gt=0, description="peak AdamW learning rate of the biases and the head (warm-up, "
                                              "then cosine)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay of the biases and the head (the "
                                                       "paper: none)")
    bn_stats: Literal["frozen", "update"] = Field("frozen", description='"frozen": batch-norm layers keep their '
                                                  'pretrained running statistics (their biases still train); '
                                                  '"update": they re-estimate them on the training data')


def biases_only(classifier: tlbench.Classifier) -> tlbench.Classifier:
    """``classifier`` with every backbone weight frozen except the biases; the head trains."""
    classifier.requires_grad_(False)
    for name, param in classifier.backbone.named_parameters():
        if name.rsplit(".", 1)[-1] == "bias":
            param.requires_grad_(True)
    classifier.head.requires_grad_(True)
    return classifier


def run(ctx, options: BitFitOptions) -> tlbench.Outcome:
    from tlbench.train.strategies import FrozenNormStats, batch_norms

    model = biases_only(ctx.classifier(pretrained=True))
    trained: nn.Module = model
    if options.bn_stats == "frozen":
        trained = FrozenNormStats(model, batch_norms(model))
    ctx.fit(trained, options.lr, options.weight_decay)
    return tlbench.Outcome(ctx.predict(model), *count_params(model))


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("bitfit", "BitFit: only the backbone's bias terms and a new head train",
                                   BitFitOptions, run, grid=GRID,
                                   space={"lr": LogUniform(1e-4, 3e-2)}, finetunes_pretrained=True, tasks=tlbench.ANY_TASK)]
