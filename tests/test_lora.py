"""The lora strategy: frozen base, trainable adapters + head, merged evaluation, parameter counts."""
import pydantic
import pytest
import torch
from helpers.toy_cells import make_ctx
from torch import nn

import tlbench
from tlbench.builtins.backbones import timm as timm_plugin
from tlbench.builtins.backbones import tiny_cnn
from tlbench.builtins.datasets.digits import DigitsOptions
from tlbench.builtins.datasets.digits import load as load_digits
from tlbench.builtins.strategies import lora
from tlbench.builtins.strategies.lora import LoraOptions
from tlbench.contract.errors import UserError

peft = pytest.importorskip("peft")

BACKBONES = {
    "tiny_cnn": lambda pretrained: tiny_cnn.build(tiny_cnn.TinyCNNOptions(width=8, input_size=8), pretrained),
    # random init ("none"): a pretrained-style timm convnet whose default targets are 1x1 convolutions
    "test_efficientnet": lambda pretrained: timm_plugin.build(
        timm_plugin.TimmOptions(model="test_efficientnet", weights="none", input_size=32), pretrained),
    # and a ViT, whose default targets are the attention projections (nn.Linear)
    "test_vit": lambda pretrained: timm_plugin.build(
        timm_plugin.TimmOptions(model="test_vit", weights="none", input_size=32), pretrained),
}


@pytest.fixture(scope="module")
def digits():
    return load_digits(DigitsOptions(image_size=8))


def expected_lora_params(backbone: nn.Module, targets: list[str], r: int) -> int:
    """r x fan-in for A plus fan-out x r for B, from each adapted layer's shape."""
    modules = dict(backbone.named_modules())
    total = 0
    for name in targets:
        m = modules[name]
        if isinstance(m, nn.Linear):
            total += r * m.in_features + m.out_features * r
        else:  # Conv2d: A is a conv with the layer's kernel, B a 1x1 conv
            kh, kw = m.kernel_size
            total += r * m.in_channels // m.groups * kh * kw + m.out_channels * r
    return total


def frozen_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of the state dict that is neither a LoRA matrix nor the head."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if "lora_" not in k and ".head." not in k}


def test_hook_and_options():
    [record] = lora.tlbench_strategies()
    assert record.name == "lora" and record.options is LoraOptions and not record.needs_target_domain
    assert record.grid["lr"] and min(record.grid["lr"]) >= 1e-3  # LoRA wants more than fine-tuning's 3e-4
    for name, field in LoraOptions.model_fields.items():
        assert field.description, name
    for bad in (dict(r=0), dict(alpha=0), dict(dropout=1.0), dict(target_modules=[]), dict(lr=-1), dict(rank=4)):
        with pytest.raises(pydantic.ValidationError):
            LoraOptions(**bad)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_lora_trains_only_adapters_and_head_and_merges_exactly(name, digits):
    build = BACKBONES[name]
    ctx = make_ctx(build, digits, epochs=1, batch_size=128, min_steps=8)
    options = LoraOptions(r=4, alpha=8, lr=1e-2)
    model = lora.build_model(ctx, options)
    backbone = model.base_model.model.backbone
    targets = build(True).lora_targets
    assert targets and sorted(n.removeprefix("base_model.model.backbone.") for n, m in model.named_modules()
                              if isinstance(m, peft.tuners.lora.LoraLayer)) == sorted(targets)

    feature_dim, classes = backbone.feature_dim, ctx.num_classes
    expected = expected_lora_params(build(True), targets, 4) + feature_dim * classes + classes
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in n or ".head." in n for n in trainable)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected
    base = sum(p.numel() for p in build(True).parameters())

    before = frozen_state(model)
    head_before = model.base_model.model.head.weight.detach().clone()
    lora.fit(ctx, model, options)

    after = frozen_state(model)
    assert after.keys() == before.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"frozen weights or statistics changed: {changed[:3]}"
    assert not torch.equal(head_before, model.base_model.model.head.weight)
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)  # B starts at zero

    unmerged = ctx.predict(model)
    merged_model = model.merge_and_unload()
    assert not any(isinstance(m, peft.tuners.lora.LoraLayer) for m in merged_model.modules())
    assert sum(p.numel() for p in merged_model.parameters()) == base + feature_dim * classes + classes
    merged = ctx.predict(merged_model)
    for split in ("val", "test"):
        torch.testing.assert_close(merged[split], unmerged[split], rtol=1e-4, atol=1e-4)


def test_run_reports_lora_plus_head_and_total(digits):
    build = BACKBONES["tiny_cnn"]
    ctx = make_ctx(build, digits, epochs=1, batch_size=256)
    outcome = lora.run(ctx, LoraOptions(r=2))
    assert isinstance(outcome, tlbench.Outcome) and set(outcome.logits) == {"val", "test"}
    assert outcome.logits["test"].shape == (len(ctx.data["test"]), 10)
    backbone = build(True)
    adapters = expected_lora_params(backbone, backbone.lora_targets, 2)
    head = backbone.feature_dim * 10 + 10
    assert outcome.trainable_params == adapters + head
    assert outcome.total_params == sum(p.numel() for p in backbone.parameters()) + adapters + head
    assert ctx.clock.images > 0 and ctx.clock.train_seconds > 0


def test_target_modules_option_names_suffixes_and_rejects_unknown_names(digits):
    ctx = make_ctx(BACKBONES["test_vit"], digits)
    model = lora.build_model(ctx, LoraOptions(target_modules=["qkv"]))
    adapted = [n for n, m in model.named_modules() if isinstance(m, peft.tuners.lora.LoraLayer)]
    assert adapted and all(n.endswith(".attn.qkv") for n in adapted)
    tiny = make_ctx(BACKBONES["tiny_cnn"], digits)
    model = lora.build_model(tiny, LoraOptions(target_modules=["stages.0.0"]))
    assert [n for n, m in model.named_modules() if isinstance(m, peft.tuners.lora.LoraLayer)] == \
        ["base_model.model.backbone.stages.0.0"]
    with pytest.raises(UserError, match="'nope' names no module"):
        lora.build_model(tiny, LoraOptions(target_modules=["nope"]))


def test_bn_stats_update_lets_batch_norm_adapt(digits):
    ctx = make_ctx(BACKBONES["tiny_cnn"], digits, epochs=1, batch_size=256)
    options = LoraOptions(bn_stats="update")
    model = lora.build_model(ctx, options)
    before = frozen_state(model)
    lora.fit(ctx, model, options)
    after = frozen_state(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("running_" in k or "num_batches" in k for k in changed)
