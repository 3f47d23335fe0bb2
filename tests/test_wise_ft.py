"""The wise_ft strategy (Wortsman et al. 2022): the pretrained model with the probe's head and a
fine-tuned one, interpolated; the mixing chosen on validation."""
import pytest
import torch
from pydantic import ValidationError
from helpers.stepped import stepped_context

from tlbench.builtins.strategies import linear_probe, lp_ft, partial_finetune, wise_ft
from tlbench.contract import series
from tlbench.plugins.host import load_registry
from tlbench.testing import check_strategy_plugin

WRAPPED = {"lp_ft": (lp_ft.run, lp_ft.LPFTOptions, {"lr": 3e-3}),
           "partial_finetune": (partial_finetune.run, partial_finetune.PartialFinetuneOptions,
                                {"lr": 3e-3, "blocks": "first", "k": 1})}


def test_options():
    options = wise_ft.WiseFTOptions()
    assert options.of == "lp_ft" and options.alphas == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    for bad in ([1.5], [-0.1, 0.5], []):
        with pytest.raises(ValidationError):
            wise_ft.WiseFTOptions(alphas=bad)
    for name, field in wise_ft.WiseFTOptions.model_fields.items():
        assert field.description, name


def test_alpha_zero_predicts_as_the_probe():
    probe = linear_probe.run(stepped_context(), linear_probe.LinearProbeOptions())
    zero = wise_ft.run(stepped_context(), wise_ft.WiseFTOptions(alphas=[0.0], of_options={"lr": 3e-3}))
    for name in probe.logits:
        assert torch.equal(zero.logits[name].argmax(1), probe.logits[name].argmax(1)), name
        assert torch.allclose(zero.logits[name], probe.logits[name], atol=1e-4), name


@pytest.mark.parametrize("of", WRAPPED)
def test_alpha_one_predicts_as_the_wrapped_strategy(of):
    run, options, values = WRAPPED[of]
    alone = run(stepped_context(), options(**values))
    ctx = stepped_context()
    one = wise_ft.run(ctx, wise_ft.WiseFTOptions(of=of, of_options=values, alphas=[1.0]))
    for name in alone.logits:
        assert torch.equal(one.logits[name], alone.logits[name]), name
    assert (one.trainable_params, one.total_params) == (alone.trainable_params, alone.total_params)
    assert ctx.trained_steps == 6  # the wrapped strategy's training, no more


def test_the_curve_and_the_chosen_alpha_are_stored():
    ctx = stepped_context()
    outcome = wise_ft.run(ctx, wise_ft.WiseFTOptions(alphas=[0.0, 0.5, 1.0], of_options={"lr": 3e-3}))
    curve = {point["alpha"]: value for point, value in series.read(outcome.extra, "wise_val_acc")}
    assert list(curve) == [0.0, 0.5, 1.0]
    assert outcome.extra["wise_alpha"] == max(curve, key=curve.get)
    labels = ctx.selection.labels
    assert (outcome.logits["val"].argmax(1) == labels).float().mean().item() == pytest.approx(max(curve.values()))
    assert ctx.clock.excluded["eval_seconds"] > 0


def test_series_keys_read_back():
    metrics = {series.key("wise_val_acc", alpha=0.3): 0.5, series.key("soup_in", lr=3e-4, kind="a"): 1.0,
               "val_acc": 0.9}
    assert list(metrics)[:2] == ["wise_val_acc[alpha=0.3]", "soup_in[lr=0.0003,kind=a]"]
    assert series.read(metrics, "wise_val_acc") == [({"alpha": 0.3}, 0.5)]
    assert series.read(metrics, "soup_in") == [({"lr": 3e-4, "kind": "a"}, 1.0)]
    assert series.read(metrics, "val_acc") == []


def test_conforms():
    check_strategy_plugin(load_registry().get("strategy", "wise_ft"), {"alphas": [0.0, 1.0]})
