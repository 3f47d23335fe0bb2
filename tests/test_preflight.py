"""The preflight's checks: each built-in's check rejects what its load would, in one line naming the
file and key; the work a check does is reused by the load that follows (a CSV read once, a folder
decoded once) and redone when the files change."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tlbench.builtins.backbones import mobilenet, timm as timm_backbone, transformers as hf_backbone
from tlbench.builtins.datasets import imagefolder, text_sets, textfile, torchvision_sets
from tlbench.contract.errors import UserError
from tlbench.plugins.host import load_registry


def test_every_builtin_dataset_and_backbone_has_a_check():
    registry = load_registry(())
    missing = [f"{kind} {name}" for kind in ("dataset", "backbone")
               for name, plugin in registry.records[kind].items() if plugin.check is None]
    assert missing == []


def test_the_check_reads_a_csv_once_for_the_load_and_again_when_it_changes(tmp_path, monkeypatch):
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\n" + "".join(f"good {i},pos\nbad {i},neg\n" for i in range(10)))
    reads = []
    real = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: reads.append(a) or real(*a, **k))
    options = textfile.TextFileOptions(path=str(path))
    textfile.check_textfile(options)
    loaded = textfile.load_textfile(options)
    assert len(reads) == 1 and loaded.classes == ["neg", "pos"]
    path.write_text("text,label\n" + "".join(f"fine {i},pos\npoor {i},neg\nmeh {i},mid\n" for i in range(10)))
    assert textfile.load_textfile(options).classes == ["mid", "neg", "pos"] and len(reads) == 2


def _folder(root, per_class=4):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def test_the_imagefolder_check_decodes_once_for_the_load_and_again_when_a_file_changes(tmp_path):
    root = _folder(tmp_path / "images")
    options = imagefolder.ImageFolderOptions(root=root, image_size=8)
    imagefolder.check(options)
    first = imagefolder.load(options)
    assert imagefolder.load(options) is first  # kept: no second decode
    (root / "b" / "9.png").write_bytes((root / "b" / "0.png").read_bytes())
    again = imagefolder.load(options)
    assert again is not first and len(again.source["all"]) == 9
    (root / "a" / "1.png").write_bytes(b"garbage")
    with pytest.raises(UserError, match=r"cannot read image .*1\.png"):
        imagefolder.check(options)


@pytest.mark.parametrize("check, options, fragments", [
    (mobilenet.check, lambda tmp: mobilenet.MobileNetV2Options(weights=str(tmp / "w.pth")),
     ["w.pth", "does not exist"]),
    (timm_backbone.check, lambda tmp: timm_backbone.TimmOptions(model="resnet18", weights=str(tmp / "r.safetensors")),
     ["r.safetensors", "does not exist"]),
    (hf_backbone.check, lambda tmp: hf_backbone.TransformersOptions(model=str(tmp / "no-model")),
     ["no-model", "does not exist"]),
    (text_sets.check_vader_pair, lambda tmp: text_sets.VaderShiftOptions(source="movies", target="films"),
     ["target = 'films'", "tweets"]),
    (torchvision_sets.PLUGINS[0].check, lambda tmp: torchvision_sets.PLUGINS[0].options(root=tmp / "none"),
     ["not found", "download = true"]),
])
def test_builtin_checks_reject_what_the_load_would_in_one_line(tmp_path, check, options, fragments):
    with pytest.raises(UserError) as info:
        check(options(tmp_path))
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_a_local_transformers_directory_without_safetensors_weights_fails_the_check(tmp_path):
    from tests.helpers.text_cells import tiny_bert
    folder = tiny_bert(tmp_path / "bert")
    hf_backbone.check(hf_backbone.TransformersOptions(model=str(folder)))  # complete: passes
    (folder / "model.safetensors").unlink()
    with pytest.raises(UserError, match="has no model.safetensors"):
        hf_backbone.check(hf_backbone.TransformersOptions(model=str(folder)))


def test_timm_hub_weights_offline_and_uncached_fail_the_check(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(timm_backbone, "_in_hub_cache", lambda repo: False)
    with pytest.raises(UserError, match="not reachable"):
        timm_backbone.check(timm_backbone.TimmOptions(model="resnet18"))
    timm_backbone.check(timm_backbone.TimmOptions(model="resnet18", weights="none"))  # nothing to fetch
