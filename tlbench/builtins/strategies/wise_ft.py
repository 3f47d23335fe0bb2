"""WiSE-FT (Wortsman et al., CVPR 2022, "Robust fine-tuning of zero-shot models"): interpolate the
weights of the pretrained and the fine-tuned model, θ(α) = (1 − α)·θ₀ + α·θ_ft, and choose α on
validation after training.

θ_ft is what the wrapped strategy ``of`` (with ``of_options``) predicted with: any strategy that
fine-tunes from pretrained weights (``StrategyPlugin.finetunes_pretrained``: lp_ft, finetune,
partial_finetune, l2sp, bitfit, third-party ones that declare it). θ₀ is the pretrained backbone
with the linear probe's head (``C``, ``max_iter``; the paper's zero-shot head has no counterpart
here), so α = 0 predicts as the probe and α = 1 as the wrapped strategy. Every parameter and
buffer (batch-norm statistics) is interpolated. Each of ``alphas`` is scored on the selection
split (no extra training: forward passes, kept as ``eval_seconds``); the first best wins (the
default order prefers the smaller α, the closer to pretrained), and the cell predicts with θ(α*).

The paper fine-tunes *from* θ₀ (the final layer initialised with the zero-shot head), so that the
straight line between the two stays in one basin: here that is ``lp_ft`` (the default ``of``; give
it the same ``C``). Wrapping ``finetune`` interpolates the probe's head with one trained from a
random initialisation: the middle of that line can be far worse than either end.

Stored: ``wise_alpha`` (α*) and the curve ``wise_val_acc[alpha=...]`` (:mod:`tlbench.contract.series`),
besides the wrapped strategy's own extras. The cell's training is the wrapped strategy's, plus the
probe's fit; its parameter counts are the wrapped strategy's.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

import tlbench
from tlbench.contract import series
from tlbench.train.strategies import ProbeOptions, classifier_in, fit_probe, mixed, snapshot, wrapped

ALPHAS = [round(0.1 * i, 1) for i in range(11)]


class WiseFTOptions(ProbeOptions):
    of: str = Field("lp_ft", description="the strategy whose fine-tuned weights are interpolated: one that "
                                         "fine-tunes from pretrained weights (lp_ft, which starts from the probe's "
                                         "head as the paper does; finetune, partial_finetune, l2sp, bitfit, ...)")
    of_options: dict[str, Any] = Field({}, description="that strategy's options, a table (e.g. { lr = 3e-4 }); "
                                                       "its defaults for the rest. A list of tables sweeps them")
    alphas: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        ALPHAS, min_length=1, description="the mixing coefficients scored on validation, each in [0, 1] (0: the "
                                          "pretrained backbone with the probe's head; 1: the fine-tuned model)")


def check(options: WiseFTOptions, strategies) -> None:
    wrapped(strategies, options.of, options.of_options)


def run(ctx, options: WiseFTOptions) -> tlbench.Outcome:
    probe, _ = fit_probe(ctx, options)
    outcome, tuned = ctx.run_strategy(options.of, options.of_options)
    end = snapshot(classifier_in(tuned))
    model = ctx.classifier(pretrained=True)
    probe.load_into(model.head)
    start = snapshot(model)
    curve = {}
    for alpha in options.alphas:
        model.load_state_dict(mixed([start, end], [1 - alpha, alpha]))
        curve[alpha] = ctx.selection_accuracy(model)
    best = max(curve, key=curve.get)  # the first of equal accuracies
    model.load_state_dict(mixed([start, end], [1 - best, best]))
    extra = {**outcome.extra, "wise_alpha": best,
             **{series.key("wise_val_acc", alpha=alpha): accuracy for alpha, accuracy in curve.items()}}
    return tlbench.Outcome(ctx.predict(model), outcome.trainable_params, outcome.total_params, extra)


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("wise_ft", "interpolate the pretrained (probe head) and a fine-tuned model's "
                                   "weights, the mixing chosen on validation (WiSE-FT, Wortsman et al. 2022)",
                                   WiseFTOptions, run, check=check)]
