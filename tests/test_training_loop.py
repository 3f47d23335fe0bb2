"""The shared training loop: evaluation of the selection split during training, the best state,
how it stops (budget, plateau, the budget check's multiple), batch norm re-estimated before each
evaluation, and the [train] recipe options."""
import math

import numpy as np
import pydantic
import pytest
import torch
from torch import nn

import dataclasses

from tlbench.tasks.classification import accuracy as accuracy_on_device
from tlbench.train import engine
from tlbench.builtins.strategies import finetune, partial_finetune
from tlbench.contract.cells import TrainOptions
from tlbench.contract.values import Split
from tlbench.contract.step import ClassificationStep, StepOutput, TrainStep
from tlbench.testing import tiny_context


def context(seed: int = 0, **train):
    """A tiny CPU cell (tiny_cnn on 300 digits: 195 train, 45 val) with these [train] options."""
    ctx = tiny_context(seed=seed, batch_size=16)
    ctx.train = ctx.train.model_copy(update=train)
    torch.manual_seed(seed)  # model initialisation, as the worker seeds it
    return ctx


def accuracy(logits: torch.Tensor, split: Split) -> float:
    return (logits.argmax(1) == split.labels).float().mean().item()


def test_the_loop_evaluates_validation_and_predicts_at_the_best_step():
    ctx = context(steps=24, eval_every=4)
    outcome = finetune.run(ctx, finetune.FinetuneOptions(lr=3e-3, recalibrate_bn=False))
    curve = ctx.val_curve
    assert [p["step"] for p in curve] == [4, 8, 12, 16, 20, 24]
    assert all(set(p) == {"step", "examples", "seconds", "val_acc"} for p in curve)  # no energy counter here
    assert [p["examples"] for p in curve[:3]] == [64, 128, 192]  # then an epoch's short last batch (195 = 12 x 16 + 3)
    assert curve[3]["examples"] == 195 + 3 * 16
    assert all(a["seconds"] < b["seconds"] for a, b in zip(curve, curve[1:]))
    accuracies = [p["val_acc"] for p in curve]
    assert ctx.best_step == curve[int(np.argmax(accuracies))]["step"] and ctx.trained_steps == 24
    # the predictions are the best state's: their validation accuracy is the best evaluation's
    assert accuracy(outcome.logits["val"], ctx.data["val"]) == pytest.approx(max(accuracies))
    assert ctx.clock.excluded["eval_seconds"] > 0


def test_keep_best_false_predicts_at_the_last_step():
    ctx = context(steps=24, eval_every=4, keep_best=False)
    outcome = finetune.run(ctx, finetune.FinetuneOptions(lr=3e-3, recalibrate_bn=False))
    assert ctx.best_step == 24
    assert accuracy(outcome.logits["val"], ctx.data["val"]) == pytest.approx(ctx.val_curve[-1]["val_acc"])


def test_restoring_the_best_state_restores_weights_and_batch_norm_statistics(monkeypatch):
    ctx = context(steps=12, eval_every=4)
    model = ctx.classifier()
    saved = {}
    original = accuracy_on_device

    def spy(m, split, *args):  # the state at each evaluation
        saved[len(saved) * 4 + 4] = {k: v.clone() for k, v in m.state_dict().items()}
        return original(m, split, *args)

    monkeypatch.setattr(ctx, "task", dataclasses.replace(ctx.task, selection=spy))
    ctx.fit(model, 3e-3)
    assert sorted(saved) == [4, 8, 12]
    best = saved[ctx.best_step]
    assert all(torch.equal(best[k], v) for k, v in model.state_dict().items())


def test_early_stopping_after_patience_evaluations_without_improvement():
    ctx = context(steps=40, eval_every=2, patience=2)
    ctx.fit(ctx.classifier(), lr=1e-12)  # nothing changes: the first evaluation stays the best
    assert [p["step"] for p in ctx.val_curve] == [2, 4, 6]
    assert ctx.best_step == 2 and ctx.trained_steps == 6


def test_the_selection_split_labels_drive_the_best_step_and_nothing_else_does():
    """The loop evaluates ``ctx.selection`` (the split named by select_on, taken when the context
    is made): other labels (test, and what a strategy sees in ``data``) do not move the best step;
    the selection labels do (the positive control)."""
    def run(poison_test=False, poison_selection=False):
        ctx = context(steps=24, eval_every=2)
        wrong = lambda s: Split(s.inputs, (s.labels + 1) % ctx.num_classes)  # noqa: E731
        if poison_test:
            ctx.data["test"] = wrong(ctx.data["test"])
            ctx.data["val"] = wrong(ctx.data["val"])  # what the strategy sees, not the loop's copy
        if poison_selection:
            ctx.selection = wrong(ctx.selection)
        torch.manual_seed(0)
        outcome = finetune.run(ctx, finetune.FinetuneOptions(lr=3e-3))
        return ctx.best_step, [p["val_acc"] for p in ctx.val_curve], outcome.logits["test"]

    clean, poisoned, selection_poisoned = run(), run(poison_test=True), run(poison_selection=True)
    assert clean[:2] == poisoned[:2] and torch.equal(clean[2], poisoned[2])
    assert selection_poisoned[1] != clean[1]


def test_an_oracle_selects_on_target_validation():
    ctx = tiny_context(target=True, select_on="target_val", batch_size=16)
    ctx.train = ctx.train.model_copy(update={"steps": 8, "eval_every": 4})
    assert ctx.selection is ctx.data["target_val"]
    outcome = finetune.run(ctx, finetune.FinetuneOptions(lr=3e-3, recalibrate_bn=False))
    best = max(p["val_acc"] for p in ctx.val_curve)
    assert accuracy(outcome.logits["target_val"], ctx.data["target_val"]) == pytest.approx(best)


# ---- how the loop stops: budget, plateau, the budget check's multiple ----------------------------

class Quadratic(TrainStep):
    """loss = ||head bias - 10||^2: falls steadily under small steps, flat once there."""

    def forward(self, inputs, labels):
        return StepOutput(((self.model.head.bias - 10) ** 2).sum(), len(labels))


def test_without_a_selection_split_the_loop_runs_to_its_cap():
    ctx = context(stop="plateau", patience=1)
    ctx.selection = None  # nothing to evaluate: nothing can plateau
    model = ctx.classifier()
    opt = torch.optim.SGD(model.head.parameters(), lr=5e-3)
    ctx.train_loop(Quadratic(model), opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), 40)
    assert ctx.stopped == "cap" and ctx.best_step is None and ctx.val_curve == []
    assert len(ctx.curve) == 21 and ctx.trained_steps == 40


def test_plateau_needs_patience():
    with pytest.raises(pydantic.ValidationError, match=r"\[train\] patience"):
        TrainOptions(stop="plateau")
    assert TrainOptions(stop="plateau", patience=3).stop == "plateau"


PER_EPOCH = 13  # 195 training examples in batches of 16


def test_plateau_stops_after_patience_evaluations_once_an_epoch():
    ctx = context(epochs=30, stop="plateau", patience=2, eval_every_epochs=1, eval_every=5)
    ctx.fit(ctx.classifier(), lr=1e-12)  # nothing changes: the first evaluation stays the best
    assert [p["step"] for p in ctx.val_curve] == [PER_EPOCH, 2 * PER_EPOCH, 3 * PER_EPOCH]  # not every 5 steps
    assert ctx.stopped == "plateau" and ctx.best_step == PER_EPOCH and ctx.trained_steps == 3 * PER_EPOCH


def test_plateau_is_capped_by_the_planned_steps():
    ctx = context(epochs=2, stop="plateau", patience=50, eval_every_epochs=0.5)
    ctx.fit(ctx.classifier(), lr=3e-3)
    assert ctx.trained_steps == 2 * PER_EPOCH and ctx.stopped == "cap"
    assert [p["step"] for p in ctx.val_curve] == [6, 12, 18, 24, 26]  # half an epoch: round(6.5) steps


def test_budget_stop_records_whether_patience_ended_it():
    ctx = context(steps=40, eval_every=2, patience=2)
    ctx.fit(ctx.classifier(), lr=1e-12)
    assert ctx.trained_steps == 6 and ctx.stopped == "plateau"
    ctx = context(steps=8, eval_every=4)
    ctx.fit(ctx.classifier(), lr=1e-3)
    assert ctx.trained_steps == 8 and ctx.stopped == "cap"


def test_budget_multiplies_the_cap_and_the_plateau_patience():
    assert context(epochs=2).steps() == 2 * PER_EPOCH
    assert context(epochs=2, budget=2.0).steps() == 4 * PER_EPOCH
    assert context(epochs=1, min_steps=20, budget=2.0).steps() == 40
    assert context(steps=7, budget=1.5).steps() == 11  # rounded up
    assert context(steps=7, budget=1.1).budgeted(40) == 44  # not 45: 40 * 1.1 is 44.000000000000004
    ctx = context(epochs=30, stop="plateau", patience=2, eval_every_epochs=1, budget=1.5)
    ctx.fit(ctx.classifier(), lr=1e-12)
    assert len(ctx.val_curve) == 1 + 3 and ctx.stopped == "plateau"  # patience 2 x 1.5 = 3
    ctx = context(steps=40, eval_every=2, patience=2, budget=2.0)  # stop = "budget": patience as given
    ctx.fit(ctx.classifier(), lr=1e-12)
    assert len(ctx.val_curve) == 3


def test_evaluations_are_an_epoch_apart_but_at_least_eval_every_steps():
    ctx = context(epochs=30, stop="plateau", patience=2, eval_every_epochs=1, eval_every=20)
    ctx.fit(ctx.classifier(), lr=1e-12)
    assert [p["step"] for p in ctx.val_curve] == [20, 40, 60]  # an epoch is PER_EPOCH < 20 steps


def test_with_a_constant_rate_the_budget_check_continues_the_same_run():
    """The budget check's re-run of a cell (budget 2) under a constant schedule without warm-up
    is the suite's run continued: the same evaluations up to where the suite's patience stopped it."""
    train = dict(epochs=30, stop="plateau", patience=2, eval_every_epochs=1, schedule="constant",
                 warmup=0.0)
    runs = []
    for budget in (1.0, 2.0):
        ctx = context(**train, budget=budget)  # seeds the initialisation, as the worker does
        ctx.fit(ctx.classifier(), lr=3e-3)
        runs.append(ctx)
    base, rerun = runs
    assert len(rerun.val_curve) > len(base.val_curve)
    assert [p["val_acc"] for p in rerun.val_curve[:len(base.val_curve)]] == \
        [p["val_acc"] for p in base.val_curve]


# ---- batch norm re-estimated before every evaluation -----------------------------------------------

def finetuned(train=None, **options):
    """A finetune cell's context, its outcome, the model it predicted with and the recalibrations."""
    ctx = context(**{"steps": 24, "eval_every": 4, **(train or {})})
    captured, predict = {}, ctx.predict
    ctx.predict = lambda model, *a: predict(captured.setdefault("model", model), *a)
    recalibrations = []
    recalibrate = ctx._recalibrate
    ctx._recalibrate = lambda model, split: (recalibrations.append(split), recalibrate(model, split))
    outcome = finetune.run(ctx, finetune.FinetuneOptions(lr=3e-3, **options))
    return ctx, outcome, captured["model"], recalibrations


def test_batch_norm_is_recalibrated_before_every_evaluation_so_selection_and_scoring_see_one_model():
    ctx, outcome, model, recalibrations = finetuned()
    assert recalibrations == ["train"] * len(ctx.val_curve) == ["train"] * 6  # and none after training
    # the selection split's accuracy recorded at best_step is the final model's validation accuracy
    selected = next(p["val_acc"] for p in ctx.val_curve if p["step"] == ctx.best_step)
    assert accuracy_on_device(model, ctx.selection, 512, ctx.autocast, ctx.num_classes) == selected
    assert accuracy(outcome.logits["val"], ctx.data["val"]) == pytest.approx(selected)
    # the test accuracy reported is the kept state's, evaluated afresh in a new model
    fresh = ctx.classifier()
    fresh.load_state_dict(model.state_dict())
    again = engine.predict(fresh, ctx.data["test"], 512, ctx.autocast)
    assert accuracy(outcome.logits["test"], ctx.data["test"]) == accuracy(again, ctx.data["test"])
    assert torch.allclose(outcome.logits["test"], again, atol=1e-5)
    # the kept buffers are precise statistics of the kept weights: re-estimating changes nothing
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    kept = [m.running_mean.clone() for m in norms]
    ctx.recalibrate_batch_norm(model)
    assert norms and all(torch.allclose(a, m.running_mean, atol=1e-5) for a, m in zip(kept, norms))
    # the control: re-estimated only after training (tlbench 0.3), the scored model is not the one selected
    ctx = context(steps=24, eval_every=4)
    model = ctx.classifier()
    ctx.fit(model, 3e-3)
    selected = next(p["val_acc"] for p in ctx.val_curve if p["step"] == ctx.best_step)
    ctx.recalibrate_batch_norm(model)
    assert accuracy_on_device(model, ctx.selection, 512, ctx.autocast, ctx.num_classes) != selected


def test_recalibration_changes_the_statistics_not_the_weights_trajectory():
    last = {"keep_best": False}
    with_bn, plain = finetuned(last)[2], finetuned(last, recalibrate_bn=False)[2]
    assert all(torch.equal(a, b) for a, b in zip(with_bn.parameters(), plain.parameters()))
    norms = lambda model: [m.running_var for m in model.modules() if isinstance(m, nn.BatchNorm2d)]  # noqa: E731
    assert not all(torch.allclose(a, b) for a, b in zip(norms(with_bn), norms(plain)))


def test_without_a_selection_split_batch_norm_is_recalibrated_once_after_training():
    ctx = context(steps=6)
    ctx.selection = None
    calls = []
    recalibrate = ctx._recalibrate
    ctx._recalibrate = lambda model, split: (calls.append(split), recalibrate(model, split))
    ctx.fit(ctx.classifier(), 3e-3, recalibrate_bn=True)
    assert calls == ["train"] and ctx.val_curve == []


def test_recalibration_leaves_frozen_batch_norm_alone():
    from tlbench.train.strategies import FrozenNormStats, batch_norms
    ctx = context()
    model = ctx.classifier()
    frozen = batch_norms(model.backbone)[:1]
    before = frozen[0].running_mean.clone()
    ctx.recalibrate_batch_norm(FrozenNormStats(model, frozen))
    assert torch.equal(frozen[0].running_mean, before)  # pretrained statistics kept
    assert batch_norms(model.backbone)[-1].running_mean.abs().sum() > 0  # the others re-estimated


# ---- recipe options -----------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [dict(label_smoothing=1.0), dict(label_smoothing=-0.1), dict(schedule="step"),
                                 dict(warmup=1.0), dict(augment="mixup"), dict(steps=0), dict(patience=-1),
                                 dict(eval_every=-1)])
def test_train_options_are_validated(bad):
    with pytest.raises(pydantic.ValidationError):
        TrainOptions(**bad)


def test_every_train_option_is_described():
    assert all(field.description for field in TrainOptions.model_fields.values())


def test_steps_overrides_epochs_and_min_steps():
    ctx = context(epochs=5, min_steps=100, steps=7)
    assert ctx.steps() == 7


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_schedules(schedule):
    ctx = context(schedule=schedule, warmup=0.1)
    opt, sched = ctx.optimizer([nn.Parameter(torch.zeros(1))], 1.0, 0.0, steps=100)
    rates = []
    for _ in range(100):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)  # 10 steps of warm-up
    assert rates[-1] == (pytest.approx(1.0) if schedule == "constant" else pytest.approx(0.0, abs=1e-3))


def test_label_smoothing_reaches_the_loss():
    model = nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    out = ClassificationStep(model, 0.2)(x, y)
    assert out.loss.item() == pytest.approx(nn.functional.cross_entropy(model(x), y, label_smoothing=0.2).item())
    assert out.loss.item() != pytest.approx(ClassificationStep(model)(x, y).loss.item())


def test_no_weight_decay_on_biases_and_norms():
    groups = engine.param_groups(list(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).named_parameters()),
                                 1e-3, 0.05)
    assert {(len(g["params"]), g["weight_decay"]) for g in groups} == {(1, 0.05), (3, 0.0)}


def test_layer_decay_scales_the_rate_block_by_block():
    ctx = context()
    classifier = ctx.classifier()
    blocks = classifier.backbone.blocks()
    scales = ctx.layer_scales(classifier, 0.5)
    for i, block in enumerate(blocks):
        assert {scales[id(p)] for p in block.parameters()} == {0.5 ** (len(blocks) - i)}
    assert all(id(p) not in scales for p in classifier.head.parameters())  # the head: full rate
    groups = engine.param_groups(list(classifier.named_parameters()), 1e-2, 0.0, lambda p: scales.get(id(p), 1.0))
    assert sorted({g["lr"] for g in groups}) == pytest.approx(sorted({1e-2 * 0.5 ** k for k in range(len(blocks) + 1)}))
    for bad in (0.0, 1.5):
        with pytest.raises(pydantic.ValidationError):
            finetune.FinetuneOptions(layer_decay=bad)
        with pytest.raises(pydantic.ValidationError):
            partial_finetune.PartialFinetuneOptions(layer_decay=bad)


def test_layer_decay_runs_in_finetune_and_partial_finetune():
    ctx = context(steps=4)
    finetune.run(ctx, finetune.FinetuneOptions(layer_decay=0.7))
    ctx = context(steps=4)
    partial_finetune.run(ctx, partial_finetune.PartialFinetuneOptions(k=2, layer_decay=0.7))
    assert ctx.trained_steps == 4


def test_layer_decay_needs_a_classifier():
    with pytest.raises(TypeError, match="Classifier"):
        context().layer_scales(nn.Linear(2, 2), 0.5)


@pytest.mark.parametrize("policy", ["crop", "flip_crop", "trivialaugment"])
def test_training_with_augmentation(policy):
    ctx = context(steps=4, augment=policy)
    outcome = finetune.run(ctx, finetune.FinetuneOptions())
    again = context(steps=4, augment=policy)
    assert torch.equal(outcome.logits["test"], finetune.run(again, finetune.FinetuneOptions()).logits["test"])
    plain = finetune.run(context(steps=4), finetune.FinetuneOptions())
    assert not torch.equal(outcome.logits["test"], plain.logits["test"])
    assert math.isfinite(ctx.curve[-1]["loss"])


def test_drop_path_is_a_timm_build_option():
    from tlbench.builtins.backbones import timm as timm_plugin

    def drop_paths(rate):
        options = timm_plugin.TimmOptions(model="test_efficientnet", weights="none", input_size=32, drop_path_rate=rate)
        return [m for m in timm_plugin.build(options, False).modules() if type(m).__name__ == "DropPath"]
    assert drop_paths(0.0) == [] and max(m.drop_prob for m in drop_paths(0.2)) > 0


def test_finetune_recalibrates_batch_norm_only_where_asked():
    assert finetuned()[3] and not finetuned(recalibrate_bn=False)[3]
