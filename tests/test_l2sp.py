"""The l2sp strategy: fine-tuning with an L2 pull towards the pretrained weights (Li et al. 2018)."""
import pytest
import torch

from tlbench.builtins.strategies import finetune, l2sp
from tlbench.builtins.strategies.l2sp.step import L2SPStep
from tlbench.plugins.host import load_registry
from tlbench.testing import check_strategy_plugin, tiny_context


def context(**train):
    ctx = tiny_context(batch_size=32)
    ctx.train = ctx.train.model_copy(update={"steps": 12, **train})
    torch.manual_seed(0)
    return ctx


def test_registered_with_documented_options():
    record = load_registry().get("strategy", "l2sp")
    assert record.role == "transfer" and record.grid["lr"]
    assert l2sp.L2SPOptions().alpha == 0.1 and l2sp.L2SPOptions().beta == 0.01  # the paper's
    with pytest.raises(ValueError):
        l2sp.L2SPOptions(alpha=-1)


def test_penalty_is_the_distance_from_the_start_and_the_head_norm():
    ctx = context()
    model = ctx.classifier()
    step = L2SPStep(ctx.task.step(model, ctx.train), alpha=1.0, beta=1.0)
    distance, norm = step.penalty()
    assert distance.item() == 0.0
    assert norm.item() == pytest.approx((model.head.weight ** 2).sum().item())
    with torch.no_grad():
        next(model.backbone.parameters()).add_(0.5)
    n = next(model.backbone.parameters()).numel()
    assert step.penalty()[0].item() == pytest.approx(0.25 * n)


def test_a_strong_pull_keeps_the_backbone_near_its_start():
    def moved(alpha):
        ctx = context(keep_best=False)
        model = ctx.classifier()
        start = [p.detach().clone() for p in model.backbone.parameters()]
        step = L2SPStep(ctx.task.step(model, ctx.train), alpha, 0.0)
        ctx.fit(model, 3e-3, 0.0, step=step)
        return sum(((p - s) ** 2).sum().item() for p, s in zip(model.backbone.parameters(), start))
    assert moved(1e3) < 0.5 * moved(0.0)


def test_without_penalty_it_is_finetune():
    options = dict(lr=3e-3, weight_decay=0.0)
    plain = finetune.run(context(), finetune.FinetuneOptions(**options))
    free = l2sp.run(context(), l2sp.L2SPOptions(alpha=0.0, beta=0.0, **options))
    assert torch.allclose(plain.logits["test"], free.logits["test"], atol=1e-5)


def test_conforms():
    check_strategy_plugin(load_registry().get("strategy", "l2sp"))


def test_it_trains_a_detector_with_the_detectors_own_loss_and_the_pull():
    """On a detection cell the task loss is the detector's (its parts in the curve) and the head
    is the detector's new head."""
    from tlbench.builtins.backbones import tiny_cnn
    from tlbench.testing import tiny_scenes

    options = tiny_cnn.TinyCNNOptions(width=4, input_size=32)
    ctx = tiny_context(tiny_scenes("detection"), task="detection", steps=3, batch_size=8,
                       build=lambda pretrained: tiny_cnn.build(options, pretrained))
    outcome = l2sp.run(ctx, l2sp.L2SPOptions(alpha=1.0, lr=1e-3))
    assert set(outcome.logits) == set(ctx.eval_splits)
    assert {"l2sp", "classification", "bbox_regression"} <= set(ctx.curve[0])
