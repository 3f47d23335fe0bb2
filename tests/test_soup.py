"""The soup strategy (Wortsman et al. 2022): uniform and greedy averages of fine-tuned variants
that share their initialisation."""
import pytest
import torch
from helpers.stepped import stepped_context

import tlbench
from tlbench.builtins.strategies import lp_ft, soup
from tlbench.contract import series
from tlbench.contract.errors import UserError
from tlbench.plugins.host import load_registry
from tlbench.testing import check_strategy_plugin

REGISTRY = load_registry()


def test_a_uniform_soup_of_identical_ingredients_is_the_ingredient():
    alone = lp_ft.run(stepped_context(), lp_ft.LPFTOptions(lr=3e-3))
    ctx = stepped_context()
    same = soup.run(ctx, soup.SoupOptions(ingredients={"lr": [3e-3, 3e-3]}, method="uniform"))
    for name in alone.logits:
        assert torch.allclose(same.logits[name], alone.logits[name], atol=1e-5), name
    assert same.extra["soup_size"] == 2 and ctx.trained_steps == 12  # both ingredients trained: the cell's cost


def test_greedy_never_lowers_validation_accuracy():
    ctx = stepped_context()
    outcome = soup.run(ctx, soup.SoupOptions(ingredients={"lr": [1e-4, 3e-3, 3e-2]}, method="greedy"))
    accuracies = {point["lr"]: value for point, value in series.read(outcome.extra, "soup_val_acc")}
    chosen = {point["lr"]: value for point, value in series.read(outcome.extra, "soup_in")}
    assert set(accuracies) == set(chosen) == {1e-4, 3e-3, 3e-2}
    assert chosen[max(accuracies, key=accuracies.get)] == 1.0  # the best ingredient is in
    assert outcome.extra["soup_size"] == sum(chosen.values())
    soup_accuracy = (outcome.logits["val"].argmax(1) == ctx.selection.labels).float().mean().item()
    assert soup_accuracy >= max(accuracies.values())


def test_uniform_takes_every_ingredient():
    outcome = soup.run(stepped_context(), soup.SoupOptions(ingredients={"lr": [1e-4, 3e-2]}, method="uniform"))
    assert [value for _, value in series.read(outcome.extra, "soup_in")] == [1.0, 1.0]


@pytest.mark.parametrize("options, fragments", [
    ({"of": "lp_ft", "ingredients": {"C": [0.1, 1.0]}}, ["ingredients.C", "architecture or initialisation"]),
    ({"of": "scratch"}, ["of = 'scratch'", "does not fine-tune from pretrained weights"]),
    ({"of": "lora"}, ["of = 'lora'", "does not fine-tune from pretrained weights"]),
    ({"of": "finetun"}, ["of: unknown strategy plugin 'finetun'", "did you mean 'finetune'"]),
    ({"ingredients": {"lrr": [1e-3]}}, ["ingredients.lrr: not an option of lp_ft"]),
    ({"ingredients": {"lr": [1e-3, 1e-3]}}, ["ingredients.lr", "twice"]),
    ({"ingredients": {"lr": []}}, ["ingredients.lr: empty"]),
    ({"ingredients": {"lr": [0.0]}}, ["of_options.lr", "greater than 0"]),
    ({"of_options": {"lr": 1e-3}}, ["ingredients.lr: also set in of_options"]),
])
def test_check_refuses_what_cannot_make_a_soup(options, fragments):
    with pytest.raises(UserError) as caught:
        soup.check(soup.SoupOptions(**options), lambda name: REGISTRY.get("strategy", name))
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_init_options_must_be_options():
    with pytest.raises(ValueError, match="its init_options names rank, which are not among its options"):
        tlbench.StrategyPlugin("x", "x", soup.SoupOptions, soup.run, init_options=("rank",))


def test_conforms():
    check_strategy_plugin(REGISTRY.get("strategy", "soup"), {"ingredients": {"lr": [1e-3, 3e-3]}})
