"""Model soups (Wortsman et al., ICML 2022): average the weights of fine-tuned variants that share
their initialisation.

The ingredients are the wrapped strategy ``of`` (one that fine-tunes from pretrained weights,
``StrategyPlugin.finetunes_pretrained``; by default ``lp_ft``, whose probe head gives every
ingredient the same well-fitted start, as the paper fine-tunes from a zero-shot or probe head) at
``of_options`` and each combination of the ``ingredients`` grid (e.g. ``{ lr = [3e-4, 1e-3] }``);
every one trains from the same pretrained weights, the same new head and the same batches
(``ctx.run_strategy`` seeds each run with the cell's seed), so they may vary optimisation options
only: not the options the wrapped strategy declares to change its architecture or initialisation
(``init_options``, e.g. lp_ft's ``C``). ``method = "uniform"`` averages them all (parameters and
buffers); ``"greedy"`` sorts them by their accuracy on the selection split and adds each in turn
while the soup's accuracy does not drop (the paper's greedy soup). The cell predicts with the soup.

Stored: each ingredient's selection accuracy ``soup_val_acc[<its options>]``, whether it went in
``soup_in[<its options>]`` (1 or 0) and ``soup_size`` (:mod:`tlbench.contract.series`). Training all
ingredients is the cell's cost (its training curves follow one another); its parameter counts are
one ingredient's.
"""
from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import Field

import tlbench
from tlbench.contract import series
from tlbench.contract.errors import UserError
from tlbench.train.strategies import FINETUNE_GRID, classifier_in, mixed, snapshot, wrapped


class SoupOptions(tlbench.Options):
    of: str = Field("lp_ft", description="the strategy whose fine-tuned variants are averaged: one that "
                                         "fine-tunes from pretrained weights (lp_ft: every ingredient from the "
                                         "probe's head; finetune, partial_finetune, l2sp, bitfit, ...)")
    of_options: dict[str, Any] = Field({}, description="that strategy's options shared by every ingredient, a "
                                                       "table; its defaults for the rest")
    ingredients: dict[str, list] = Field(FINETUNE_GRID, min_length=1,
                                         description="a grid over the wrapped strategy's optimisation options "
                                                     "(e.g. { lr = [3e-4, 1e-3, 3e-3] }): one ingredient per "
                                                     "combination, all from the same initialisation")
    method: Literal["uniform", "greedy"] = Field("greedy", description="uniform: average every ingredient; greedy: "
                                                 "add ingredients best first while the soup's validation accuracy "
                                                 "does not drop")


def combinations(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, in order (``{"lr": [1, 2]}`` -> ``[{"lr": 1}, {"lr": 2}]``)."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def check(options: SoupOptions, strategies) -> None:
    record = wrapped(strategies, options.of, options.of_options)
    for key, values in options.ingredients.items():
        if key not in record.options.model_fields:
            raise UserError(f"ingredients.{key}: not an option of {record.name}; its options: "
                            f"{', '.join(record.options.model_fields)}")
        if key in record.init_options:
            raise UserError(f"ingredients.{key}: {record.name}'s {key} changes the model's architecture or "
                            "initialisation, and a soup's ingredients must share one; vary optimisation options "
                            f"only (set {key} in of_options)")
        if key in options.of_options:
            raise UserError(f"ingredients.{key}: also set in of_options; give it in one of the two")
        if not values:
            raise UserError(f"ingredients.{key}: empty list; give at least one value")
        if len(set(map(repr, values))) < len(values):
            raise UserError(f"ingredients.{key}: a value is given twice ({values}); give each once")
    for combo in combinations(options.ingredients):
        wrapped(strategies, options.of, {**options.of_options, **combo})


def average(states: list[dict]) -> dict:
    """The uniform average of model states."""
    return mixed(states, [1 / len(states)] * len(states))


def run(ctx, options: SoupOptions) -> tlbench.Outcome:
    grid = combinations(options.ingredients)
    states, accuracies = [], []
    for combo in grid:  # every run seeded alike: the same initialisation
        outcome, tuned = ctx.run_strategy(options.of, {**options.of_options, **combo})
        model = classifier_in(tuned)
        states.append(snapshot(model))
        accuracies.append(ctx.selection_accuracy(model))
    order = sorted(range(len(grid)), key=lambda i: -accuracies[i])  # stable: the first of equals first
    chosen = order
    if options.method == "greedy":
        chosen, best = order[:1], accuracies[order[0]]
        for i in order[1:]:
            model.load_state_dict(average([states[j] for j in chosen + [i]]))
            accuracy = ctx.selection_accuracy(model)
            if accuracy >= best:
                chosen, best = chosen + [i], accuracy
    model.load_state_dict(average([states[i] for i in chosen]))
    extra = {"soup_size": float(len(chosen))}
    for i, combo in enumerate(grid):
        extra[series.key("soup_val_acc", **combo)] = accuracies[i]
        extra[series.key("soup_in", **combo)] = float(i in chosen)
    return tlbench.Outcome(ctx.predict(model), outcome.trainable_params, outcome.total_params, extra)


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("soup", "average the weights of fine-tuned variants that share their "
                                   "initialisation, uniformly or greedily on validation (model soups, Wortsman "
                                   "et al. 2022)", SoupOptions, run, check=check)]
