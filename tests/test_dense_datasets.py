"""Detection and segmentation datasets: the scene generator, COCO and mask folders, and their
one-line errors (directly and through ``tlbench run --dry-run``)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import tlbench
from tlbench.builtins.datasets import coco, mask_folder, scenes
from conftest import TINY
from test_suite_errors import assert_user_error

SMALL = dict(images=40, image_size=32, objects=(1, 3), classes=(1, 4, 7), seed=3)


def test_scenes_are_deterministic_and_seeded():
    one, two = scenes.compose(scenes.ScenesOptions(**SMALL)), scenes.compose(scenes.ScenesOptions(**SMALL))
    assert torch.equal(one.images, two.images) and np.array_equal(one.instances, two.instances)
    other = scenes.compose(scenes.ScenesOptions(**{**SMALL, "seed": 4}))
    assert not torch.equal(one.images, other.images)
    assert one.images.shape == (40, 3, 32, 32) and one.images.dtype == torch.uint8


def test_scene_boxes_are_tight_and_padded():
    options = scenes.ScenesOptions(**SMALL)
    scene = scenes.compose(options)
    data = scenes.load_detection(options)
    split = data.source["all"]
    assert data.classes == ["1", "4", "7"]
    assert split.targets.shape == (40, max(map(len, scene.classes)), 5)
    for i, kinds in enumerate(scene.classes):
        assert 1 <= len(kinds) <= 3
        rows = split.targets[i]
        for k, kind in enumerate(kinds):
            ys, xs = np.nonzero(scene.instances[i] == k)
            assert rows[k].tolist() == [kind, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert (rows[len(kinds):] == -1).all()
        area = (rows[:len(kinds), 3] - rows[:len(kinds), 1]) * (rows[:len(kinds), 4] - rows[:len(kinds), 2])
        assert split.labels[i] == rows[int(area.argmax()), 0]


def test_scene_occlusion_is_bounded():
    options = scenes.ScenesOptions(**{**SMALL, "objects": (3, 3), "max_occlusion": 0.2})
    scene = scenes.compose(options)
    for instances, kinds, pasted in zip(scene.instances, scene.classes, scene.pasted):
        visible = np.bincount(instances[instances >= 0], minlength=len(kinds))
        assert len(visible) == len(kinds) == len(pasted)
        assert (visible >= 0.8 * pasted).all() and visible[-1] == pasted[-1]  # the last one is on top
    assert sum(map(len, scene.classes)) > 2 * len(scene.classes)  # most scenes got their three objects


def test_scene_masks_follow_the_boxes():
    options = scenes.ScenesOptions(**SMALL)
    boxes = scenes.load_detection(options).source["all"].targets
    data = scenes.load_segmentation(options)
    masks, strata = data.source["all"].targets, data.source["all"].labels
    assert data.classes == ["background", "1", "4", "7"] and masks.dtype == torch.int64
    for mask, rows, stratum in zip(masks, boxes, strata):
        inside = torch.zeros_like(mask, dtype=torch.bool)
        for cls, x1, y1, x2, y2 in rows[rows[:, 0] >= 0].long().tolist():
            inside[y1:y2, x1:x2] = True
            assert (mask[y1:y2, x1:x2] == cls + 1).any()  # the object is visible in its box
        assert (mask[~inside] == 0).all()  # no object pixel outside every box
        counts = torch.bincount(mask.flatten(), minlength=4)[1:]
        assert stratum == counts.argmax() + 1


def test_scenes_from_mnist_keep_the_chosen_classes(monkeypatch):
    from tlbench.modalities import digits

    x = np.zeros((30, 28, 28), np.float32)
    x[:, 6:20, 10:14] = 0.9  # a bar of ink: 14 rows by 4 columns
    monkeypatch.setattr(digits, "mnist_arrays", lambda: {"train": (x, np.arange(30, dtype=np.int64) % 10)})
    options = scenes.ScenesOptions(**{**SMALL, "source": "mnist", "objects": (1, 1), "object_scale": (0.5, 0.5)})
    split = scenes.load_detection(options).source["all"]
    assert set(split.labels.tolist()) == {0, 1, 2}
    _, _, y1, _, y2 = split.targets[:, 0].T
    assert ((y2 - y1) == 16).all()  # the ink, not the 28x28 frame, is scaled to half of 32 pixels


def test_scene_options_are_checked():
    with pytest.raises(ValueError, match="fewest"):
        scenes.ScenesOptions(objects=(3, 1))
    with pytest.raises(ValueError, match="distinct digits"):
        scenes.ScenesOptions(classes=(1, 1))


def test_segmentation_strata_without_objects():
    from tlbench.modalities.dense import segmentation_split

    masks = torch.tensor([[[0, 255], [0, 0]], [[2, 1], [1, 255]], [[2, 1], [0, 0]]])
    assert segmentation_split(torch.zeros(3, 3, 2, 2), masks, 3).labels.tolist() == [0, 1, 1]


# ------------------------------------------------------------------------------- COCO

def write_coco(tmp_path, images=None, annotations=None, categories=None, name="train.json"):
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    Image.new("RGB", (40, 20), (200, 10, 10)).save(folder / "wide.png")
    Image.new("RGB", (20, 20), (10, 200, 10)).save(folder / "square.png")
    data = {
        "images": images or [{"id": 7, "file_name": "wide.png", "width": 40, "height": 20},
                             {"id": 3, "file_name": "square.png", "width": 20, "height": 20}],
        "annotations": annotations or [
            {"id": 1, "image_id": 7, "category_id": 5, "bbox": [10, 0, 20, 10]},   # inside the crop
            {"id": 2, "image_id": 7, "category_id": 2, "bbox": [0, 5, 5, 5]},      # left of the crop: dropped
            {"id": 3, "image_id": 7, "category_id": 2, "bbox": [5, 10, 10, 10]},   # clipped at x = 0
            {"id": 4, "image_id": 3, "category_id": 2, "bbox": [2, 4, 6, 8]},
            {"id": 5, "image_id": 3, "category_id": 5, "bbox": [0, 0, 20, 20], "iscrowd": 1}],  # left out
        "categories": categories or [{"id": 5, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def coco_options(tmp_path, **extra):
    return coco.CocoOptions(annotations=tmp_path / "train.json", images=tmp_path / "images", image_size=10, **extra)


def test_coco_round_trip(tmp_path):
    write_coco(tmp_path)
    options = coco_options(tmp_path)
    coco.check(options)
    data = coco.load(options)
    assert data.classes == ["dog", "cat"]  # sorted category ids 2, 5
    split = data.source["all"]
    assert split.inputs.shape == (2, 3, 10, 10)
    # image 3 (20x20 -> 10x10): halved; image 7 (40x20 -> 20x10, crop x from 5): halved, shifted by 5
    assert split.targets[0].tolist() == [[0, 1, 2, 4, 6], [-1, -1, -1, -1, -1]]
    assert split.targets[1].tolist() == [[1, 0, 0, 10, 5], [0, 0, 5, 2.5, 10]]
    assert split.labels.tolist() == [0, 1]
    assert split.inputs[0, 1].eq(200).all() and split.inputs[1, 0].eq(200).all()


def test_coco_official_splits(tmp_path):
    write_coco(tmp_path)
    write_coco(tmp_path, name="test.json")
    data = coco.load(coco_options(tmp_path, test=tmp_path / "test.json"))
    assert set(data.source) == {"train", "test"}
    with pytest.raises(ValueError, match="val is given without test"):
        coco_options(tmp_path, val=tmp_path / "test.json")


@pytest.mark.parametrize("change, fragments", [
    ({"annotations": [{"id": 9, "image_id": 7, "category_id": 5, "bbox": [30, 0, 20, 10]}]},
     ["train.json", "annotation 9", "not inside image 7", "40x20"]),
    ({"annotations": [{"id": 9, "image_id": 7, "category_id": 4, "bbox": [0, 0, 2, 2]}]},
     ["train.json", "annotation 9", "category_id 4", "2, 5"]),
    ({"annotations": [{"id": 9, "image_id": 8, "category_id": 5, "bbox": [0, 0, 2, 2]}]},
     ["train.json", "annotation 9", "image 8"]),
    ({"images": [{"id": 7, "file_name": "gone.png", "width": 40, "height": 20}],
      "annotations": [{"id": 9, "image_id": 7, "category_id": 5, "bbox": [0, 0, 2, 2]}]},
     ["train.json", "image 7", "gone.png"]),
    ({"images": [{"id": 7, "file_name": "wide.png", "width": 50, "height": 20}],
      "annotations": [{"id": 9, "image_id": 7, "category_id": 5, "bbox": [0, 0, 2, 2]}]},
     ["train.json", "image 7", "wide.png", "40x20", "50x20"]),
])
def test_coco_preflight_errors(tmp_path, change, fragments):
    write_coco(tmp_path, **change)
    with pytest.raises(tlbench.UserError) as err:
        coco.check(coco_options(tmp_path))
    message = str(err.value)
    assert "\n" not in message and all(f in message for f in fragments), message


def test_coco_missing_and_malformed_json(tmp_path):
    write_coco(tmp_path)
    (tmp_path / "train.json").write_text('{"images": [')
    with pytest.raises(tlbench.UserError, match="train.json is not valid JSON"):
        coco.check(coco_options(tmp_path))
    (tmp_path / "train.json").unlink()
    with pytest.raises(tlbench.UserError, match="train.json not found"):
        coco.check(coco_options(tmp_path))


# ------------------------------------------------------------------------------- mask folder

def write_masks(tmp_path, values=(0, 1, 2, 255), size=(30, 20), mask_size=None, stems=("a", "b")):
    images, masks = tmp_path / "img", tmp_path / "masks"
    images.mkdir(exist_ok=True)
    masks.mkdir(exist_ok=True)
    for k, stem in enumerate(stems):
        Image.new("RGB", size, (k * 50, 0, 0)).save(images / f"{stem}.jpg")
    for k, stem in enumerate(stems[:1] if len(stems) > 1 and mask_size == "missing" else stems):
        mask = np.zeros((size[1], size[0]), np.uint8)
        mask[:, :10], mask[:, 10:20], mask[:, 20:] = values[1 + k % 2], values[3], values[2]
        Image.fromarray(mask, "L").resize(mask_size if isinstance(mask_size, tuple) else size).save(
            masks / f"{stem}.png")
    (masks / "classes.txt").write_text("background\ncat\ndog\n")
    return mask_folder.MaskFolderOptions(images=images, masks=masks, image_size=10)


def test_mask_folder_round_trip(tmp_path):
    options = write_masks(tmp_path)
    mask_folder.check(options)
    data = mask_folder.load(options)
    assert data.classes == ["background", "cat", "dog"]
    split = data.source["all"]
    assert split.inputs.shape == (2, 3, 10, 10) and split.targets.shape == (2, 10, 10)
    # 30x20 -> 15x10, crop x from 2 (round(2.5)); nearest: columns 0-4 -> 1, 5-9 -> 255, 10-14 -> 2
    row = split.targets[0, 0].tolist()
    assert row == [1] * 3 + [255] * 5 + [2] * 2
    assert split.labels.tolist() == [1, 2]  # a: 3 columns of cat vs 2 of dog; b: the other way
    named = mask_folder.MaskFolderOptions(images=options.images, masks=options.masks, classes=["bg", "x", "y"])
    assert mask_folder.load(named).classes == ["bg", "x", "y"]


@pytest.mark.parametrize("kwargs, fragments", [
    (dict(mask_size=(15, 10)), ["mask", "a.png", "15x10", "a.jpg", "30x20"]),
    (dict(mask_size="missing"), ["image", "b.jpg", "no mask", "b.png"]),
    (dict(values=(0, 1, 7, 255)), ["mask", "a.png", "value 7", "0-2"]),
])
def test_mask_folder_errors(tmp_path, kwargs, fragments):
    options = write_masks(tmp_path, **kwargs)
    with pytest.raises(tlbench.UserError) as err:
        mask_folder.check(options)
    message = str(err.value)
    assert "\n" not in message and all(f in message for f in fragments), message


# ------------------------------------------------------------------------------- through the CLI

DIGITS = 'plugin = "digits"\nimage_size = 8\n'
COCO_SUITE = TINY.replace(DIGITS, 'plugin = "coco_detection"\nannotations = "train.json"\nimages = "images"\n')
MASK_SUITE = TINY.replace(DIGITS, 'plugin = "mask_folder"\nimages = "img"\nmasks = "masks"\n')


@pytest.mark.parametrize("change, fragments", [
    ({"annotations": [{"id": 9, "image_id": 7, "category_id": 5, "bbox": [30, 0, 20, 10]}]},
     ["train.json", "annotation 9", "not inside image 7"]),
    ({"annotations": [{"id": 9, "image_id": 7, "category_id": 4, "bbox": [0, 0, 2, 2]}]},
     ["train.json", "annotation 9", "category_id 4"]),
    ({"images": [{"id": 7, "file_name": "gone.png", "width": 40, "height": 20}],
      "annotations": [{"id": 9, "image_id": 7, "category_id": 5, "bbox": [0, 0, 2, 2]}]},
     ["train.json", "image 7", "gone.png"]),
])
def test_cli_dry_run_rejects_bad_coco(write_suite, cli, tmp_path, change, fragments):
    assert "coco_detection" in COCO_SUITE and 'plugin = "finetune"' in COCO_SUITE
    write_coco(tmp_path, **change)
    assert_user_error(cli("run", write_suite(COCO_SUITE), "--dry-run"), "coco_detection", *fragments)
    assert not (tmp_path / "results").exists()


def test_cli_dry_run_rejects_bad_masks(write_suite, cli, tmp_path):
    assert "mask_folder" in MASK_SUITE
    write_masks(tmp_path, values=(0, 1, 7, 255))
    assert_user_error(cli("run", write_suite(MASK_SUITE), "--dry-run"), "mask_folder", "a.png", "value 7")
    assert not (tmp_path / "results").exists()
