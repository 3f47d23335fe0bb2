"""Feature pyramids of the image backbones and the detection / segmentation models on them
(tlbench.tasks.detection.model, tlbench.tasks.segmentation.model): shapes, gradients through
frozen and LoRA-adapted backbones, boxes in raw pixels, and small overfitting runs."""
import pytest
import torch
from torch import nn

from tlbench.builtins.backbones.mobilenet import MobileNetV2Options
from tlbench.builtins.backbones.mobilenet import build as build_mobilenet
from tlbench.builtins.backbones.timm import TimmOptions
from tlbench.builtins.backbones.timm import build as build_timm
from tlbench.builtins.backbones.tiny_cnn import TinyCNNOptions
from tlbench.builtins.backbones.tiny_cnn import build as build_tiny
from tlbench.contract.step import ModelLoss
from tlbench.tasks.detection.model import Detector
from tlbench.tasks.pyramid import pyramid_strides
from tlbench.tasks.segmentation.model import Segmenter


def tiny(input_size=32):
    torch.manual_seed(0)
    return build_tiny(TinyCNNOptions(width=8, input_size=input_size), pretrained=False)


BACKBONES = {
    "tiny_cnn": (tiny, [2, 4]),
    "mobilenetv2": (lambda: build_mobilenet(MobileNetV2Options(weights="none", input_size=64), pretrained=False),
                    [4, 8, 16, 32]),
    "efficientnet_lite0": (lambda: build_timm(TimmOptions(model="efficientnet_lite0", weights="none", input_size=64),
                                              pretrained=False), [4, 8, 16, 32]),
}


def scene(count=4, size=48, seed=0):
    """``count`` dark ``size``-px images, each with one or two bright rectangles (red: class 0,
    green: class 1), and their targets ``count×2×5`` in pixels, padded with class -1."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 40, (count, 3, size, size), generator=gen, dtype=torch.uint8)
    targets = torch.full((count, 2, 5), -1.0)
    for i in range(count):
        for j in range(1 + i % 2):
            w, h = (int(v) for v in torch.randint(12, 20, (2,), generator=gen))
            x, y = 4 + 22 * j, int(torch.randint(2, size - h - 2, (), generator=gen))
            cls = (i + j) % 2
            images[i, cls, y:y + h, x:x + w] = 230
            targets[i, j] = torch.tensor([cls, x, y, x + w, y + h], dtype=torch.float)
    return images, targets


def iou(a, b):
    """IoU of boxes ``a`` (N×4) with boxes ``b`` (N×4), row by row."""
    from torchvision.ops import box_iou

    return box_iou(a, b).diagonal()


@pytest.mark.parametrize("name", list(BACKBONES))
def test_pyramid_maps_match_channels_and_strides(name):
    make, strides = BACKBONES[name]
    backbone = make().eval()
    size = backbone.input_size
    x = backbone.prepare(torch.randint(0, 256, (2, 3, 50, 50), dtype=torch.uint8))
    with torch.no_grad():
        maps = backbone.pyramid(x)
        pooled = backbone(x)
    assert [m.shape[1] for m in maps] == backbone.pyramid_channels()
    assert [tuple(m.shape[2:]) for m in maps] == [(size // s, size // s) for s in strides]
    assert pyramid_strides(backbone) == strides
    if name != "efficientnet_lite0":  # the last map is what forward pools (timm's ends before conv_head)
        torch.testing.assert_close(maps[-1].mean((2, 3)), pooled)


def test_pyramid_strides_leave_every_module_mode_and_statistic_alone():
    backbone = tiny().train()
    backbone.stages[0].eval()
    stats = {k: v.clone() for k, v in backbone.state_dict().items()}
    assert pyramid_strides(backbone) == [2, 4]
    assert backbone.training and not backbone.stages[0].training and backbone.stages[1].training
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, stats[k]), k


@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_a_frozen_backbone_gives_maps_without_grad_and_the_head_trains(task):
    images, targets = scene()
    model = Detector(tiny(), 2) if task == "detection" else Segmenter(tiny(), 2)
    model.backbone.requires_grad_(False)
    maps = model.backbone.pyramid(model.backbone.prepare(images))
    assert not any(m.requires_grad for m in maps)
    loss = model(images, targets).total if task == "detection" else model(images).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.head.parameters() if p.requires_grad)
    assert not set(map(id, model.head.parameters())) & set(map(id, model.backbone.parameters()))


def test_detector_loss_is_finite_and_reaches_the_backbone():
    images, targets = scene()
    model = Detector(tiny(), 2).train()
    loss = model(images, targets)
    assert isinstance(loss, ModelLoss) and torch.isfinite(loss.total)
    assert set(loss.parts) == {"classification", "bbox_regression", "bbox_ctrness"}
    torch.testing.assert_close(loss.total, sum(loss.parts.values()))
    loss.total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())


def test_detections_are_padded_and_in_raw_pixels():
    model = Detector(tiny(32), 2, detections_per_img=20).eval()
    images = torch.randint(0, 256, (3, 3, 48, 80), dtype=torch.uint8)  # raw 80 wide, 48 high; input 32
    with torch.no_grad():
        out = model(images)
        found = model.head(list(model.backbone.prepare(images)))  # in the 32-px input's pixels
    assert out.shape == (3, 20, 6)
    for rows, d in zip(out, found):
        n = len(d["scores"])
        assert 0 < n <= 20
        torch.testing.assert_close(rows[:n, :4], d["boxes"] * torch.tensor([80 / 32, 48 / 32] * 2))
        torch.testing.assert_close(rows[:n, 4], d["scores"])
        assert torch.equal(rows[:n, 5], d["labels"].float())
        assert torch.equal(rows[n:], torch.tensor([0, 0, 0, 0, 0, -1.0]).expand(20 - n, 6))
    assert (out[..., 0:4:2] <= 80).all() and (out[..., 1:4:2] <= 48).all()


def test_targets_in_eval_mode_are_one_clear_error_and_training_without_them_gives_the_maps():
    images, targets = scene(2)
    model = Detector(tiny(), 2)
    maps = model.train()(images)  # without targets: the pyramid network's maps (precise BN passes batches so)
    assert len(maps) == len(model.backbone.pyramid_channels()) and all(m.shape[:2] == (2, 64) for m in maps.values())
    with pytest.raises(ValueError, match="eval mode detects"):
        model.eval()(images, targets)


def _top_box_iou(model, images, targets):
    """Mean over images of the IoU of the best-scoring detection with the true box it overlaps
    most, 0 where its class is wrong."""
    with torch.no_grad():
        top = model.eval()(images)[:, 0]
    scores = []
    for box, truth in zip(top, targets):
        truth = truth[truth[:, 0] >= 0]
        overlaps = iou(box[None, :4].expand(len(truth), 4), truth[:, 1:])
        best = int(overlaps.argmax())
        scores.append(float(overlaps[best]) if truth[best, 0] == box[5] else 0.0)
    return sum(scores) / len(scores)


def test_a_detector_overfits_a_few_images():
    images, targets = scene(4, size=48)
    model = Detector(tiny(32), 2)  # raw 48 px, input 32 px: boxes scaled both ways
    before = _top_box_iou(model, images, targets)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(100):
        opt.zero_grad()
        model(images, targets).total.backward()
        opt.step()
    after = _top_box_iou(model, images, targets)
    assert after > 0.5 and after > before + 0.3, (before, after)


def test_segmenter_logits_are_raw_size_and_it_overfits_a_few_masks():
    images, targets = scene(4, size=40)
    masks = torch.zeros(4, 40, 40, dtype=torch.long)
    for mask, boxes in zip(masks, targets):
        for cls, x1, y1, x2, y2 in boxes[boxes[:, 0] >= 0].long().tolist():
            mask[y1:y2, x1:x2] = cls + 1
    masks[:, :2] = 255  # unlabelled rows
    model = Segmenter(tiny(32), 3)
    assert model(images[:, :, :, :36]).shape == (4, 3, 40, 36)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(images), masks, ignore_index=255).backward()
        opt.step()
    with torch.no_grad():
        predicted = model.eval()(images).argmax(1)
    labelled = masks != 255
    assert (predicted == masks)[labelled].float().mean() > 0.95
    objects = labelled & (masks > 0)
    assert (predicted == masks)[objects].float().mean() > 0.8


@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_lora_on_the_backbone_trains_through_the_pyramid(task):
    import peft

    images, targets = scene(2)
    model = Detector(tiny(), 2) if task == "detection" else Segmenter(tiny(), 2)
    config = peft.LoraConfig(r=4, target_modules=["backbone." + n for n in model.backbone.lora_targets])
    adapted = peft.get_peft_model(model, config)
    loss = adapted(images, targets).total if task == "detection" else adapted(images).logsumexp(1).mean()
    loss.backward()
    lora = {n: p for n, p in adapted.named_parameters() if "lora_B" in n}
    assert len(lora) == len(model.backbone.lora_targets)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora.values())


def test_a_merged_lora_detector_detects_as_the_adapted_one():
    """peft swaps layers inside the backbone; the detector's FPN reads that same backbone, adapted
    and then merged."""
    import peft

    images, targets = scene(2)
    model = Detector(tiny(), 2)
    adapted = peft.get_peft_model(model, peft.LoraConfig(
        r=4, target_modules=["backbone." + n for n in model.backbone.lora_targets]))
    opt = torch.optim.SGD([p for p in adapted.parameters() if p.requires_grad], lr=0.1)
    adapted(images, targets).total.backward()
    opt.step()
    x = model.backbone.prepare(images)
    with torch.no_grad():
        adapted.eval()
        before = model.head.backbone(x)
        with adapted.disable_adapter():
            unadapted = model.head.backbone(x)
        merged = adapted.merge_and_unload()
        after = merged.head.backbone(x)
    assert not torch.allclose(before["0"], unadapted["0"])
    for key in before:
        torch.testing.assert_close(after[key], before[key], atol=1e-5, rtol=1e-4)


def test_a_timm_model_without_feature_info_gives_no_pyramid():
    from tlbench.builtins.backbones.timm.model import TimmBackbone
    from tlbench.contract.errors import NotApplicable

    model = nn.Sequential(nn.Conv2d(3, 4, 1))
    model.num_features = 4
    with pytest.raises(NotApplicable, match="gives no feature pyramid"):
        TimmBackbone(model, 32, (0.5,) * 3, (0.5,) * 3).pyramid_channels()
