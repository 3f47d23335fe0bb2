"""The peft strategy: every method on a tiny CNN, a timm convnet, MobileNetV2-shaped convolutions and a tiny BERT
(adapts, or is skipped with peft's reason), its options mapped onto peft's config dataclasses and
checked in one line, the worker's skip, and the listing."""
import dataclasses
import typing

import pydantic
import pytest
import torch
import torchvision
from click.testing import CliRunner
from helpers import text_cells
from helpers.toy_cells import make_ctx
from torch import nn

import tlbench
from tlbench.builtins.backbones import timm as timm_plugin
from tlbench.builtins.backbones import tiny_cnn
from tlbench.builtins.backbones import transformers as tf
from tlbench.builtins.backbones.mobilenet.model import MobileNetV2
from tlbench.builtins.datasets import textfile
from tlbench.builtins.datasets.digits import DigitsOptions
from tlbench.builtins.datasets.digits import load as load_digits
from tlbench.builtins.strategies import lora
from tlbench.train import peft as peft_methods
from tlbench.train.peft import METHODS, PeftOptions
from tlbench.cli import main
from tlbench.contract.errors import NotApplicable
from tlbench.testing import tiny_suite

peft = pytest.importorskip("peft")

#: small settings that fit the tiny layers (OFT's blocks must divide a layer's inputs)
SMALL = {"lora": dict(r=2), "dora": dict(r=2), "ia3": {}, "loha": dict(r=2), "lokr": dict(r=2),
         "oft": dict(oft_block_size=8), "boft": {}, "vera": dict(r=4), "hra": dict(r=2),
         "fourierft": dict(n_frequency=16)}
#: what peft cannot wrap: its tuners that adapt nn.Linear only, on convolutions; OFT on 3x3 convolutions
SKIPPED = {(convnet, method) for convnet in ("tiny_cnn", "timm_cnn", "mobilenetv2") for method in ("vera", "fourierft")}
SKIPPED.add(("tiny_cnn", "oft"))


def mobilenet_shaped(pretrained: bool) -> MobileNetV2:
    """The MobileNetV2 backbone class on the first inverted-residual blocks of torchvision's
    MobileNetV2 at width 0.25: pointwise and depthwise convolutions as in the real one."""
    torch.manual_seed(0)
    return MobileNetV2(nn.Sequential(*torchvision.models.mobilenet_v2(width_mult=0.25).features[:4]), 16)


def timm_cnn(pretrained: bool):
    """timm's test_efficientnet, random init: depthwise-separable blocks, squeeze-excitation."""
    return timm_plugin.build(timm_plugin.TimmOptions(model="test_efficientnet", weights="none", input_size=16),
                             pretrained)


@pytest.fixture(scope="module")
def contexts(tmp_path_factory):
    """backbone name -> a function giving a fresh small context (images 16x16; texts of 2 words+)."""
    digits = load_digits(DigitsOptions(image_size=8))
    folder = tmp_path_factory.mktemp("text")
    options = tf.TransformersOptions(model=str(text_cells.tiny_bert(folder / "bert")), max_length=16)
    texts = textfile.load_textfile(textfile.TextFileOptions(path=str(text_cells.write_csv(folder / "t.csv"))))
    splits = text_cells.encoded_splits(texts, tf.encoder(options))
    tiny = lambda pretrained: tiny_cnn.build(tiny_cnn.TinyCNNOptions(width=8, input_size=16), pretrained)  # noqa: E731
    return {
        "tiny_cnn": lambda: make_ctx(tiny, digits, batch_size=64, label_fraction=0.05),
        "mobilenetv2": lambda: make_ctx(mobilenet_shaped, digits, batch_size=64, label_fraction=0.05),
        "timm_cnn": lambda: make_ctx(timm_cnn, digits, batch_size=64, label_fraction=0.05),
        "bert": lambda: text_cells.make_ctx(lambda pretrained: tf.build(options, pretrained), splits, 2,
                                            batch_size=64),
    }


def example_batch(ctx):
    return tlbench.contract.values.take(ctx.data["test"].inputs, slice(0, 16))


@pytest.mark.parametrize("backbone", ["tiny_cnn", "timm_cnn", "mobilenetv2", "bert"])
@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_adapts_the_declared_targets_or_is_skipped_with_its_reason(method, backbone, contexts):
    ctx = contexts[backbone]()
    options = PeftOptions(method=method, **SMALL[method])
    if (backbone, method) in SKIPPED:
        with pytest.raises(NotApplicable, match=rf"^{method} cannot adapt the Conv2d layers of backbone "):
            peft_methods.build_model(ctx, options)
        return
    model = peft_methods.build_model(ctx, options)
    classifier = model.base_model.model
    plain = ctx.classifier(pretrained=True)
    # every pretrained weight frozen; what trains is new (the adapters) or the head
    base_names = {n for n, _ in plain.named_parameters()}
    trainable = [n.removeprefix("base_model.model.") for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("head.") or n.replace(".base_layer", "") not in base_names
                             for n in trainable), trainable
    adapted = {n.removeprefix("backbone.") for n, m in classifier.named_modules()
               if isinstance(m, peft.tuners.tuners_utils.BaseTunerLayer)}
    assert adapted == set(plain.backbone.lora_targets)
    # trained adapters (not their identity initialisation) merge into the plain architecture exactly
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and not name.startswith("base_model.model.head"):
                p.add_(0.05 * torch.randn_like(p))
    model.eval()
    batch = example_batch(ctx)
    with torch.no_grad():
        unmerged = model(batch)
        deployable = peft_methods.merged(model)
        assert deployable is not None
        assert not any(isinstance(m, peft.tuners.tuners_utils.BaseTunerLayer) for m in deployable.modules())
        assert sum(p.numel() for p in deployable.parameters()) == sum(p.numel() for p in plain.parameters())
        torch.testing.assert_close(deployable.eval()(batch), unmerged, rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(model(batch), unmerged)  # merging worked on a copy


@pytest.mark.parametrize("method,backbone", [("loha", "mobilenetv2"), ("ia3", "bert")])
def test_run_trains_only_the_adapters_and_head_and_reports_them(method, backbone, contexts):
    ctx = contexts[backbone]()
    options = PeftOptions(method=method, lr=1e-2, **SMALL[method])
    outcome = peft_methods.run(ctx, options)
    plain = ctx.classifier(pretrained=True)
    head = sum(p.numel() for p in plain.head.parameters())
    model, adapter = ctx.deployed
    assert outcome.extra["merged"] == 1.0 and set(outcome.logits) == set(ctx.eval_splits)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters())
    assert outcome.total_params - sum(p.numel() for p in plain.parameters()) == outcome.trainable_params - head
    assert sum(t.numel() for t in adapter.values()) == outcome.trainable_params
    # training moved the head and the adapters away from the pretrained model
    assert not torch.equal(model.head.weight, plain.head.weight)
    assert ctx.clock.images > 0


def test_lora_preset_is_the_peft_strategy_with_method_lora(contexts):
    runs = []
    for options in (lora.LoraOptions(r=2, lr=1e-2), PeftOptions(method="lora", r=2, lr=1e-2)):
        ctx = contexts["tiny_cnn"]()
        runs.append(peft_methods.run(ctx, options))
    for split in runs[0].logits:
        assert torch.equal(runs[0].logits[split], runs[1].logits[split])
    assert runs[0].trainable_params == runs[1].trainable_params
    assert set(lora.LoraOptions.model_fields) == {"r", "alpha", "dropout", "target_modules", "lr", "weight_decay",
                                                  "bn_stats"}
    assert lora.LoraOptions().alpha == 16.0 and PeftOptions().method == "lora"


def test_options_map_onto_peft_config_fields():
    """Each method's options name fields of its peft config, with peft's type and default
    (LoRA's alpha: 16, not peft's 8), and every option has help text."""
    for method in METHODS.values():
        cls = method.config_class()
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        for option, default in method.options.items():
            name = method.fields.get(option, option)
            assert name in defaults, (method.name, name)
            expected = 16 if option == "alpha" and method.config == "LoraConfig" else defaults[name]
            assert default == expected, (method.name, option)
            declared = peft_methods.OPTIONS[option].kind
            assert declared is hints[name] or (declared is float and hints[name] is int), (method.name, option)
        for key in method.fixed:
            assert key in defaults
    for name, info in PeftOptions.model_fields.items():
        assert info.description, name


@pytest.mark.parametrize("bad,message", [
    (dict(method="ia3", r=4), "method 'ia3' has no option 'r'; its options: none"),
    (dict(method="oft", r=4), "You can only specify either r (4) or oft_block_size (32)"),
    (dict(method="lora", r=0), "greater than or equal to 1"),
    (dict(method="lora", dropout=1.0), "less than 1"),
    (dict(method="adalora"), "Input should be 'lora', 'dora'"),
])
def test_bad_options_are_one_line_errors(bad, message, write_suite):
    with pytest.raises(pydantic.ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PeftOptions(**bad)
    entries = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in bad.items())
    path = write_suite(f"""
        [suite]
        name = "bad"
        [[backbone]]
        plugin = "tiny_cnn"
        [[dataset]]
        plugin = "digits"
        [[strategy]]
        plugin = "peft"
        {entries}
        """)
    result = CliRunner().invoke(main, ["run", str(path), "--dry-run"])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert "[[strategy]] #1 (peft)" in line and message in line


def test_a_method_that_cannot_wrap_the_layers_is_a_skipped_cell(write_suite, cli):
    path = write_suite(tiny_suite([{"plugin": "peft", "method": "vera", "r": 4}, {"plugin": "bitfit"}],
                                  suite={"name": "skip"}, train={"epochs": 1, "batch_size": 256}))
    result = cli("run", path, "--no-report")
    assert result.exit_code == 0, result.output
    from tlbench.run.store import Store
    records = {r.strategy: r for r in Store(path.parent / "results" / "skip").records()}
    assert records["peft"].status == "skipped"
    assert records["peft"].error.startswith("vera cannot adapt the Conv2d layers of backbone TinyCNN: ")
    assert records["bitfit"].status == "ok"


def test_list_strategies_shows_the_methods_and_their_options():
    result = CliRunner(env={"COLUMNS": "300"}).invoke(main, ["list", "strategies"])
    assert result.exit_code == 0, result.output
    for text in ("peft", "bitfit", "lora", "method: the peft tuner: lora, dora, ia3, loha, lokr, oft, boft, vera",
                 "oft_block_size: size of each orthogonal block", "(default: oft 32)", "r: rank of the update"):
        assert text in result.output, text
