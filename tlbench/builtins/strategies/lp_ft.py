"""LP-FT (Kumar et al., ICLR 2022, "Fine-tuning can distort pretrained features and underperform
out-of-distribution"): first a linear probe, then full fine-tuning from the probe's head.

Stage one is ``linear_probe``'s logistic regression on the cached frozen pretrained features
(``C``, ``max_iter``), its standardisation folded into a linear head on the raw features. Stage two
fine-tunes every weight from the pretrained backbone and that head, as ``finetune`` does (``lr``,
``weight_decay``, ``layer_decay``, ``recalibrate_bn``). A head that already fits means small
gradients into the backbone at the start, so the features move less (better out of distribution,
the paper's +10 points over ten shifts, at about +1 in distribution). The probe's fit is charged to
the cell as ``linear_probe``'s is (the forward pass over the training examples, then the fit).
"""
from __future__ import annotations

import tlbench
from tlbench.train.strategies import (FINETUNE_GRID, FINETUNE_SPACE, FullFinetuneOptions, ProbeOptions, fine_tune,
                                      fit_probe)


class LPFTOptions(FullFinetuneOptions, ProbeOptions):
    """The probe's ``C`` and ``max_iter``; the fine-tuning's ``lr``, ``weight_decay``, ``layer_decay``
    and ``recalibrate_bn``."""


def run(ctx, options: LPFTOptions) -> tlbench.Outcome:
    probe, _ = fit_probe(ctx, options)
    model = ctx.classifier(pretrained=True)
    probe.load_into(model.head)
    return fine_tune(ctx, model, options)


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("lp_ft", "linear probe, then fine-tune all weights from the probe's head "
                                   "(LP-FT, Kumar et al. 2022)", LPFTOptions, run, grid=FINETUNE_GRID,
                                   space=FINETUNE_SPACE, finetunes_pretrained=True, init_options=("C", "max_iter"))]
