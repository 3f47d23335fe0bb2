"""The text guide's dataset plugin example is a complete module: loaded through the plugin
loader (--plugin), it serves a text cell."""
import sys

import pytest
import torch

from tlbench.train import data as data_mod
from tlbench.builtins.backbones import transformers as tf
from tlbench.builtins.strategies import linear_probe
from tlbench.plugins.loading import plugin_manager
from tlbench.plugins.host import Host

from helpers import text_cells
from helpers.docs import page, python_blocks

MARKER = "# my_textfolder.py"


def example_source() -> str:
    found = [b for b in python_blocks(page("guides/text.md")) if b.startswith(MARKER)]
    if not found:
        pytest.fail(f"no python block starting with {MARKER!r} in docs/guides/text.md")
    return found[0]


def test_text_guide_plugin_example_runs(tmp_path, monkeypatch):
    (tmp_path / "my_textfolder.py").write_text(example_source())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_textfolder", raising=False)
    root = tmp_path / "reviews"
    for k, (text, label) in enumerate(text_cells.sentences(40)):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{k:03d}.txt").write_text(text + "\n", encoding="utf-8")

    registry = Host(plugin_manager(["my_textfolder"])[0]).registry
    plugin = registry.get("dataset", "textfolder")
    assert plugin.modality == "text"
    loaded = plugin.load(plugin.options(root=str(root)))
    assert loaded.classes == ["neg", "pos"] and len(loaded.source["all"]) == 40
    assert all(isinstance(t, str) for t in loaded.source["all"].inputs)

    options = tf.TransformersOptions(model=str(text_cells.tiny_bert(tmp_path / "bert")), max_length=16)
    splits = text_cells.encoded_splits(loaded, tf.encoder(options))
    ctx = text_cells.make_ctx(lambda pretrained: tf.build(options, pretrained), splits, 2)
    outcome = linear_probe.run(ctx, linear_probe.LinearProbeOptions())
    assert outcome.logits["test"].shape == (len(data_mod.prepare(loaded)["test"]), 2)
    assert torch.isfinite(outcome.logits["test"]).all()
