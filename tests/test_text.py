"""The text layer: tokenisation once per dataset, padding trimmed per batch, the transformers
backbone (pooling, blocks, LoRA targets, scratch) and every strategy on text with no text branch."""
import warnings

import pytest
import torch

import tlbench
from tlbench.builtins.backbones import transformers as tf
from tlbench.builtins.datasets import textfile
from tlbench.builtins.strategies import dann, finetune, linear_probe, lora, partial_finetune, scratch
from tlbench.contract.errors import UserError
from tlbench.modalities import text
from tlbench.modalities.text import TextBackbone, Tokenize, TruncationWarning

from helpers import text_cells


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return text_cells.tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def options(bert_dir):
    return tf.TransformersOptions(model=str(bert_dir), max_length=32)


def test_tokenize_pads_to_one_width_and_warns_once_with_a_count(options):
    enc = tf.encoder(options)
    assert enc.key.endswith(";max_length=32") and str(options.model) in enc.key
    single = enc(["short one", "a slightly longer text here"])
    assert single["input_ids"].shape == (2, 32) and single["input_ids"].dtype == torch.int32
    assert single["attention_mask"].sum(1).tolist() == [4, 7]  # [CLS] ... [SEP]
    long = "word " * 100
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        both = enc({"train": ["tiny", long, long], "test": ["another short text", long]})
    messages = [str(w.message) for w in caught if issubclass(w.category, TruncationWarning)]
    assert len(messages) == 1 and messages[0].startswith("3 of 5 texts of the dataset are longer than max_length = 32")
    assert both["train"]["input_ids"].shape == (3, 32) and both["test"]["input_ids"].shape == (2, 32)
    assert both["train"]["input_ids"][1, -1].item() == enc.tokenizer.sep_token_id  # truncated keeps [SEP]
    short = enc({"a": ["tiny"], "b": ["two words"]})  # the dataset's longest when shorter than max_length
    assert short["a"]["input_ids"].shape[1] == short["b"]["input_ids"].shape[1] == 4
    assert enc.calls == 3
    split_by_split = tf.encoder(options)  # as the worker calls it: one split at a time, one warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for split in (["tiny", long, long], [long], ["short"]):
            split_by_split(split)
    messages = [str(w.message) for w in caught if issubclass(w.category, TruncationWarning)]
    assert len(messages) == 1 and messages[0].startswith("2 of 3 texts of a split are longer")


def test_prepare_trims_a_batch_to_its_longest_row():
    batch = {"input_ids": torch.arange(12, dtype=torch.int32).view(2, 6),
             "attention_mask": torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.int32)}
    out = TextBackbone().prepare(batch)
    assert out["input_ids"].shape == (2, 3) and out["input_ids"].dtype == torch.int64
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_mean_pooling_ignores_padding_and_cls_takes_the_first_token(options):
    enc = tf.encoder(options)
    backbone = tf.build(options, pretrained=True).eval()
    assert backbone.feature_dim == 32 and backbone.model.pooler is None
    alone = enc(["good film"])
    padded = enc(["good film", "a much longer sentence that pads the first one a lot"])
    with torch.no_grad():
        assert torch.allclose(backbone.extract(alone)[0], backbone.extract(padded)[0], atol=1e-5)
        cls = tf.build(options.model_copy(update={"pooling": "cls"}), pretrained=True).eval()
        hidden = cls.model(**cls.prepare(alone)).last_hidden_state
        assert torch.allclose(cls.extract(alone), hidden[:, 0])


def test_blocks_lora_targets_and_scratch(options, bert_dir):
    backbone = tf.build(options, pretrained=True)
    blocks = backbone.blocks()
    assert len(blocks) == 3 and blocks[0] is backbone.model.embeddings
    assert list(blocks[1:]) == list(backbone.model.encoder.layer)
    in_blocks = {id(p) for b in blocks for p in b.parameters()}
    assert in_blocks == {id(p) for p in backbone.parameters()}  # every parameter, pooling has none
    assert {t.rsplit(".", 1)[-1] for t in backbone.lora_targets} == {"query", "key", "value", "dense"}
    assert all(".attention." in t for t in backbone.lora_targets) and len(backbone.lora_targets) == 8
    random_init = tf.build(options, pretrained=False)
    assert [n for n, _ in random_init.named_parameters()] == [n for n, _ in backbone.named_parameters()]
    saved = backbone.model.embeddings.word_embeddings.weight
    assert not torch.equal(random_init.model.embeddings.word_embeddings.weight, saved)
    from safetensors.torch import load_file
    weights = load_file(bert_dir / "model.safetensors")
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    assert torch.equal(weights[key], saved)


def test_unknown_encoder_offline_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(text, "hub_reachable", lambda: False)
    tf.resolve.cache_clear()
    with pytest.raises(UserError, match="needs the hub .*or a local directory") as err:
        tf.encoder(tf.TransformersOptions(model="someone/no-such-encoder"))
    assert "\n" not in str(err.value) and "'someone/no-such-encoder'" in str(err.value)
    with pytest.raises(UserError, match="does not exist"):
        tf.build(tf.TransformersOptions(model="/no/such/dir"), True)


def test_weights_load_from_safetensors_only(tmp_path, bert_dir):
    import shutil
    folder = tmp_path / "pt-only"
    shutil.copytree(bert_dir, folder)
    weights = __import__("safetensors.torch", fromlist=["load_file"]).load_file(folder / "model.safetensors")
    torch.save(weights, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(UserError, match="safetensors"):
        tf.build(tf.TransformersOptions(model=str(folder)), True)
    tf.build(tf.TransformersOptions(model=str(folder)), False)  # random init needs only the config


# ---------------------------------------------------------------------------------------------
# every strategy on text, through CellContext


@pytest.fixture(scope="module")
def text_data(tmp_path_factory, options):
    folder = tmp_path_factory.mktemp("text-data")
    single = textfile.load_textfile(textfile.TextFileOptions(path=str(text_cells.write_csv(folder / "t.csv"))))
    pair = textfile.load_textfile(textfile.TextFileShiftOptions(
        path=str(text_cells.write_csv(folder / "pair.csv", domains=True)), domain_column="domain",
        source="reviews", target="tweets"))
    enc = tf.encoder(options)
    return text_cells.encoded_splits(single, enc), text_cells.encoded_splits(pair, enc)


STRATEGIES = {
    "linear_probe": (linear_probe.run, linear_probe.LinearProbeOptions()),
    "finetune": (finetune.run, finetune.FinetuneOptions(lr=3e-3)),
    "partial_finetune": (partial_finetune.run, partial_finetune.PartialFinetuneOptions(k=1, lr=3e-3)),
    "lora": (lora.run, lora.LoraOptions(r=2, lr=1e-2)),
    "scratch": (scratch.run, scratch.ScratchOptions(lr=3e-3)),
}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_trains_on_text(name, options, text_data):
    run, strategy_options = STRATEGIES[name]
    splits, _ = text_data
    ctx = text_cells.make_ctx(lambda pretrained: tf.build(options, pretrained), splits, 2, epochs=2)
    outcome = run(ctx, strategy_options)
    for split in ctx.eval_splits:
        assert outcome.logits[split].shape == (len(splits[split]), 2)
        assert torch.isfinite(outcome.logits[split]).all()
    assert 0 < outcome.trainable_params <= outcome.total_params
    if name == "partial_finetune":  # the top layer and the head
        layer = sum(p.numel() for p in tf.build(options, True).blocks()[-1].parameters())
        assert outcome.trainable_params == layer + 33 * 2
    if name == "lora":  # r=2 on 4 projections x 2 layers (32 -> 32) and the head
        assert outcome.trainable_params == 8 * 2 * (32 + 32) + 33 * 2
    if name != "linear_probe":
        assert ctx.clock.images > 0


def test_dann_trains_across_two_text_domains(options, text_data):
    _, pair = text_data
    assert {"target_train", "target_val", "target_test"} <= set(pair)
    ctx = text_cells.make_ctx(lambda pretrained: tf.build(options, pretrained), pair, 2, epochs=1)
    outcome = dann.run(ctx, dann.DannOptions(hidden=16, lr=3e-3))
    assert outcome.logits["target_test"].shape == (len(pair["target_test"]), 2)
    assert 0 <= outcome.extra["domain_acc"] <= 1
    assert ctx.clock.images == 2 * len(pair["train"])  # one epoch: each source text and as many target
