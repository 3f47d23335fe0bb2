"""Image dataset plugins: ``imagefolder`` on tiny PNGs, and the torchvision sets on tiny files laid
out exactly as torchvision expects them, read through torchvision's own dataset classes."""
from __future__ import annotations

import pickle

import numpy as np
import pluggy
import pydantic
import pytest
import torch
from PIL import Image

import tlbench
from tlbench.plugins import hookspecs
from tlbench.builtins.datasets import imagefolder, torchvision_sets
from tlbench.modalities.image import square_rgb
from tlbench.contract.errors import UserError

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


def write_image(path, color, size=(12, 20), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, fmt)


def mean_colors(images: torch.Tensor) -> np.ndarray:
    return images.float().mean(dim=(2, 3)).numpy()


def assert_colors(split: tlbench.Split, classes_colors, tol=0.0):
    """Every image shows the colour of its label's class: images and labels stay paired."""
    expected = np.array([classes_colors[int(y)] for y in split.labels], dtype=np.float32)
    np.testing.assert_allclose(mean_colors(split.inputs), expected, atol=tol)


def plugin(name):
    pm = pluggy.PluginManager("tlbench")
    pm.add_hookspecs(hookspecs)
    pm.register(imagefolder)
    pm.register(torchvision_sets)
    found = {p.name: p for plugins in pm.hook.tlbench_datasets() for p in plugins}
    return found[name]


def load(name, **options):
    p = plugin(name)
    return p.load(p.options(**options))


# --------------------------------------------------------------------------- shared helper


def test_square_rgb_resizes_shorter_side_and_center_crops():
    image = Image.new("RGB", (30, 10))
    for i, color in enumerate(COLORS[:3]):  # three 10x10 vertical bands: red | green | blue
        image.paste(color, (10 * i, 0, 10 * i + 10, 10))
    out = square_rgb(image, 10)
    assert out.shape == (3, 10, 10) and out.dtype == torch.uint8
    assert (out[:, :, :] == torch.tensor([0, 255, 0], dtype=torch.uint8)[:, None, None]).all()
    assert square_rgb(image, 4).shape == (3, 4, 4)
    assert square_rgb(Image.new("L", (5, 9), 7), 6).shape == (3, 6, 6)  # grayscale -> RGB, upscaled
    assert square_rgb(Image.new("RGBA", (8, 8), (1, 2, 3, 4)), 8)[:, 0, 0].tolist() == [1, 2, 3]


# --------------------------------------------------------------------------- imagefolder


def test_imagefolder_flat(tmp_path):
    for i in range(3):
        write_image(tmp_path / "cat" / f"{i}.png", COLORS[0], size=(10 + i, 25))
    write_image(tmp_path / "dog" / "b.png", COLORS[1], size=(30, 14))
    write_image(tmp_path / "dog" / "nested" / "a.PNG", COLORS[1], fmt="PNG")  # subfolders and upper case
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / "dog" / "._b.png").write_bytes(b"macOS resource fork")  # hidden files are skipped
    data = load("imagefolder", root=tmp_path, image_size=16)
    assert data.classes == ["cat", "dog"]
    assert set(data.source) == {"all"} and data.target is None
    split = data.source["all"]
    assert split.inputs.shape == (5, 3, 16, 16) and split.inputs.dtype == torch.uint8
    assert split.labels.dtype == torch.int64 and split.labels.tolist() == [0, 0, 0, 1, 1]
    assert_colors(split, COLORS)
    again = load("imagefolder", root=tmp_path, image_size=16).source["all"]
    assert torch.equal(again.inputs, split.inputs) and torch.equal(again.labels, split.labels)


def test_imagefolder_default_size_and_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_image(tmp_path / "pics" / "x" / "1.png", COLORS[2])
    write_image(tmp_path / "pics" / "y" / "1.png", COLORS[3])
    options = plugin("imagefolder").options(root="~/pics")
    assert options.root == tmp_path / "pics" and options.image_size == 64
    assert plugin("imagefolder").load(options).source["all"].inputs.shape == (2, 3, 64, 64)


def test_imagefolder_train_val_test(tmp_path):
    for name in ("a", "b", "c"):
        for i in range(2):
            write_image(tmp_path / "train" / name / f"{i}.png", COLORS["abc".index(name)])
    write_image(tmp_path / "val" / "b" / "0.png", COLORS[1])  # a class missing from val/test is fine
    write_image(tmp_path / "test" / "a" / "0.png", COLORS[0])
    write_image(tmp_path / "test" / "c" / "0.png", COLORS[2])
    data = load("imagefolder", root=tmp_path, image_size=8)
    assert data.classes == ["a", "b", "c"]
    assert set(data.source) == {"train", "val", "test"}
    assert data.source["train"].labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.source["val"].labels.tolist() == [1]
    assert data.source["test"].labels.tolist() == [0, 2]
    assert data.source["test"].inputs.shape == (2, 3, 8, 8)
    for split in data.source.values():
        assert_colors(split, COLORS)


def test_imagefolder_train_test_and_train_only(tmp_path):
    for split in ("train", "test"):
        for name in ("a", "b"):
            write_image(tmp_path / split / name / "0.png", COLORS[0])
    assert set(load("imagefolder", root=tmp_path, image_size=4).source) == {"train", "test"}
    only_train = tmp_path / "only"
    write_image(only_train / "train" / "a" / "0.png", COLORS[0])
    assert set(load("imagefolder", root=only_train, image_size=4).source) == {"all"}


@pytest.mark.parametrize("layout, message", [
    ({"train/a/0.png", "test/zzz/0.png"}, "zzz"),  # unknown class in test
    ({"train/a/0.png", "val/a/0.png"}, "test/"),  # val without test
    ({"train/a/0.png", "test/a/0.png", "extra/0.png"}, "extra"),  # split and class folders mixed
    ({"0.png"}, "no class folders"),  # images but no class folders
    ({"a/0.png", "b/notes.txt"}, "has no images"),  # an empty class folder
])
def test_imagefolder_layout_errors(tmp_path, layout, message):
    for rel in layout:
        if rel.endswith(".png"):
            write_image(tmp_path / rel, COLORS[0])
        else:
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text("x")
    with pytest.raises(UserError, match=message):
        load("imagefolder", root=tmp_path)


def test_imagefolder_missing_root_fails_validation(tmp_path):
    """Caught when the suite is validated, before anything trains (the CLI test checks the line)."""
    missing = tmp_path / "nowhere"
    with pytest.raises(pydantic.ValidationError, match=f"folder not found: {missing}"):
        load("imagefolder", root=missing)


def test_imagefolder_empty(tmp_path):
    with pytest.raises(UserError, match="no images"):
        load("imagefolder", root=tmp_path)
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "readme.txt").write_text("x")
    with pytest.raises(UserError, match="no images"):
        load("imagefolder", root=tmp_path)


def test_imagefolder_unreadable_image(tmp_path):
    write_image(tmp_path / "a" / "0.png", COLORS[0])
    (tmp_path / "a" / "1.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="1.png"):
        load("imagefolder", root=tmp_path)


def test_options_are_checked():
    with pytest.raises(pydantic.ValidationError, match=r"colour\s+Extra inputs are not permitted"):
        plugin("imagefolder").options(root="x", colour=True)  # unknown keys are errors
    with pytest.raises(pydantic.ValidationError, match=r"root\s+Field required"):
        plugin("imagefolder").options()  # root is required
    for p in (plugin(n) for n in ("imagefolder", "cifar10", "flowers102")):
        for name, info in p.options.model_fields.items():
            assert info.description, (p.name, name)


# --------------------------------------------------------------------------- torchvision sets


def only_skip_md5(monkeypatch, module):
    """Patch ONLY torchvision's MD5 integrity check in ``module``: the checksums are of the real
    archives, which tiny fabricated files cannot match. The file must still exist, exactly as
    torchvision's ``check_integrity(fpath, md5=None)`` checks."""
    from torchvision.datasets.utils import check_integrity

    monkeypatch.setattr(module, "check_integrity", lambda fpath, md5=None: check_integrity(fpath, None))


def cifar_batch(labels, key):
    """A CIFAR pickle: rows of 3072 bytes (channel-major 3x32x32), one flat colour per label."""
    data = np.stack([np.broadcast_to(np.array(COLORS[y % len(COLORS)], dtype=np.uint8)[:, None, None], (3, 32, 32))
                     for y in labels])
    return {"data": data.reshape(len(labels), 3072), key: list(labels)}


def write_pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar(tmp_path, monkeypatch, name):
    import torchvision.datasets
    import torchvision.datasets.cifar

    only_skip_md5(monkeypatch, torchvision.datasets.cifar)
    if name == "cifar10":
        base, key, meta, meta_key = tmp_path / "cifar-10-batches-py", "labels", "batches.meta", "label_names"
        names = [f"class{i}" for i in range(10)]
        train = [[0, 1], [2, 3], [4, 0], [1, 2], [3, 4]]
        for i, labels in enumerate(train, 1):
            write_pickle(base / f"data_batch_{i}", cifar_batch(labels, key))
        write_pickle(base / "test_batch", cifar_batch([4, 3, 2], key))
    else:
        base, key, meta, meta_key = tmp_path / "cifar-100-python", "fine_labels", "meta", "fine_label_names"
        names = [f"class{i}" for i in range(100)]
        train = [[0, 1, 2, 3, 4, 0, 1, 2, 3, 4]]
        write_pickle(base / "train", cifar_batch(train[0], key))
        write_pickle(base / "test", cifar_batch([4, 3, 2], key))
    write_pickle(base / meta, {meta_key: names})

    data = load(name, root=tmp_path)
    assert data.classes == names
    assert set(data.source) == {"train", "test"}
    assert data.source["train"].inputs.shape == (10, 3, 32, 32)  # default image_size 32 for CIFAR
    assert data.source["train"].labels.tolist() == [y for labels in train for y in labels]
    assert data.source["test"].labels.tolist() == [4, 3, 2]
    for split in data.source.values():
        assert split.inputs.dtype == torch.uint8
        assert_colors(split, COLORS)
    assert load(name, root=tmp_path, image_size=20).source["test"].inputs.shape == (3, 3, 20, 20)
    # at the native 32 pixels the arrays are taken as they are: same as the per-image path
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    slow = cls(str(tmp_path), train=True, transform=lambda image: square_rgb(image, 32))
    assert torch.equal(torch.stack([image for image, _ in slow]), data.source["train"].inputs)


def test_flowers102(tmp_path, monkeypatch):
    import scipy.io
    import torchvision.datasets.flowers102

    only_skip_md5(monkeypatch, torchvision.datasets.flowers102)
    base = tmp_path / "flowers-102"
    labels = [1, 2, 3, 1, 2, 3, 1, 3]  # 1-based, image_00001 .. image_00008
    for image_id, label in enumerate(labels, 1):
        write_image(base / "jpg" / f"image_{image_id:05d}.jpg", COLORS[label - 1], size=(80, 60))
    scipy.io.savemat(base / "imagelabels.mat", {"labels": np.array([labels])})
    scipy.io.savemat(base / "setid.mat", {"trnid": np.array([[1, 2, 3]]), "valid": np.array([[4, 5]]),
                                          "tstid": np.array([[6, 7, 8]])})
    data = load("flowers102", root=tmp_path, image_size=24)
    assert len(data.classes) == 102 and data.classes[0] == "pink primrose"
    assert set(data.source) == {"train", "val", "test"}
    assert data.source["train"].labels.tolist() == [0, 1, 2]
    assert data.source["val"].labels.tolist() == [0, 1]
    assert data.source["test"].labels.tolist() == [2, 0, 2]
    assert data.source["test"].inputs.shape == (3, 3, 24, 24)
    for split in data.source.values():
        assert_colors(split, COLORS, tol=4)  # JPEG


def test_oxford_pets(tmp_path):
    base = tmp_path / "oxford-iiit-pet"
    # official ids: Abyssinian 1 (cat), american_bulldog 2 (dog), beagle 5 (dog); test lacks a breed
    trainval = [("Abyssinian_1", 1, 1), ("american_bulldog_10", 2, 2), ("beagle_3", 5, 2), ("Abyssinian_2", 1, 1)]
    test = [("beagle_7", 5, 2), ("Abyssinian_9", 1, 1)]
    color = {1: COLORS[0], 2: COLORS[1], 5: COLORS[2]}
    for file, rows in (("trainval.txt", trainval), ("test.txt", test)):
        (base / "annotations").mkdir(parents=True, exist_ok=True)
        (base / "annotations" / file).write_text("".join(f"{i} {c} {s} 1\n" for i, c, s in rows))
        for image_id, label, _ in rows:
            write_image(base / "images" / f"{image_id}.jpg", color[label], size=(50, 70))
    data = load("oxford_pets", root=tmp_path, image_size=16)
    assert data.classes == ["Abyssinian", "American Bulldog", "Beagle"]
    assert set(data.source) == {"train", "test"}
    assert data.source["train"].labels.tolist() == [0, 1, 2, 0]
    assert data.source["test"].labels.tolist() == [2, 0]
    assert data.source["train"].inputs.shape == (4, 3, 16, 16)
    for split in data.source.values():
        assert_colors(split, COLORS, tol=4)


def test_dtd(tmp_path):
    base = tmp_path / "dtd" / "dtd"
    splits = {"train": ["banded/banded_0001.jpg", "zigzagged/zigzagged_0001.jpg", "dotted/dotted_0001.jpg"],
              "val": ["dotted/dotted_0002.jpg", "banded/banded_0002.jpg"],
              "test": ["zigzagged/zigzagged_0003.jpg"]}  # test lists only one class
    color = {"banded": COLORS[0], "dotted": COLORS[1], "zigzagged": COLORS[2]}
    (base / "labels").mkdir(parents=True)
    for split, files in splits.items():
        (base / "labels" / f"{split}1.txt").write_text("".join(f + "\n" for f in files))
        (base / "labels" / f"{split}2.txt").write_text(files[0] + "\n")  # another partition, unused
        for file in files:
            write_image(base / "images" / file, color[file.split("/")[0]], size=(90, 64))
    data = load("dtd", root=tmp_path, image_size=32)
    assert data.classes == ["banded", "dotted", "zigzagged"]
    assert data.source["train"].labels.tolist() == [0, 2, 1]
    assert data.source["val"].labels.tolist() == [1, 0]
    assert data.source["test"].labels.tolist() == [2]
    assert data.source["val"].inputs.shape == (2, 3, 32, 32)
    for split in data.source.values():
        assert_colors(split, COLORS, tol=4)


def test_eurosat(tmp_path):
    base = tmp_path / "eurosat" / "2750"
    for c, name in enumerate(["Forest", "AnnualCrop", "River"]):
        for i in range(2):
            write_image(base / name / f"{name}_{i + 1}.jpg", COLORS[c], size=(64, 64))
    data = load("eurosat", root=tmp_path)
    assert data.classes == ["AnnualCrop", "Forest", "River"]
    assert set(data.source) == {"all"}
    split = data.source["all"]
    assert split.inputs.shape == (6, 3, 64, 64)
    assert split.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert_colors(split, [COLORS[1], COLORS[0], COLORS[2]], tol=4)


@pytest.mark.parametrize("name", [spec.name for spec in torchvision_sets.SPECS])
def test_torchvision_missing_files(tmp_path, name):
    p = plugin(name)
    assert p.options().root.is_absolute() and p.options().download is False
    with pytest.raises(UserError) as err:
        p.load(p.options(root=tmp_path))
    message = str(err.value)
    assert name in message and str(tmp_path) in message and "download = true" in message
    assert "\n" not in message


def test_torchvision_default_image_sizes():
    assert plugin("cifar10").options().image_size == 32
    assert plugin("cifar100").options().image_size == 32
    for name in ("flowers102", "oxford_pets", "dtd", "eurosat"):
        assert plugin(name).options().image_size == 64


def test_stack_images_threads_keep_order():
    from tlbench.modalities.image import stack_images

    def get(i):
        return torch.full((3, 2, 2), i % 251, dtype=torch.uint8)

    threaded = stack_images(1000, 2, get, workers=4)
    assert torch.equal(threaded, stack_images(1000, 2, get, workers=1))
    assert threaded[:, 0, 0, 0].tolist() == [i % 251 for i in range(1000)]
