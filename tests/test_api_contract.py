"""The documented plugin API is the real one: every call in the CellContext table of docs/writing-plugins.md runs as
written on a real context; 0.2's train_loop(model, opt, schedule, steps, loss_of) still trains, with
a DeprecationWarning; the page's third-party strategy runs through `tlbench run`; CHANGELOG.md,
pyproject.toml and tlbench.__version__ agree."""
import dataclasses
import inspect
import re
import tomllib
import warnings
from pathlib import Path

import pytest
import torch

import tlbench
from tlbench.train import data as data_mod
from tlbench.builtins.backbones.tiny_cnn import TinyCNNOptions, build
from tlbench.builtins.datasets import digits
from tlbench.train.context import CellContext
from tlbench.contract.cells import TrainOptions
from tlbench.plugins.host import load_registry
from tlbench.run.worker import extract_features
from tlbench.testing import tiny_suite

from helpers.docs import named_block, page, section

ROOT = Path(__file__).parent.parent
PAGE = page("writing-plugins.md")


def documented_calls() -> list[str]:
    """The first column of the CellContext table: ``ctx.`` expressions (several per row: ``, ``)."""
    rows = [line for line in section(PAGE, "## The `CellContext` a strategy receives").splitlines()
            if line.startswith("| `ctx.")]
    return [expr for row in rows for expr in re.findall(r"`(ctx\.[^`]+)`", row.split("|")[1])]


def make_ctx() -> CellContext:
    splits = data_mod.prepare(digits.load(digits.DigitsOptions(image_size=8)))
    backbone = lambda pretrained: build(TinyCNNOptions(width=4, input_size=8), pretrained)  # noqa: E731
    ctx = None

    def features_cache(make_backbone):
        return extract_features(make_backbone(), splits, 512, ctx.autocast)
    ctx = CellContext(data=dict(splits), train_index=torch.arange(len(splits["train"])), num_classes=10,
                      device=torch.device("cpu"), train=TrainOptions(epochs=1, batch_size=256, min_steps=2),
                      seed=0, build=backbone, features_cache=features_cache,
                      strategies=lambda name: load_registry().get("strategy", name))
    return ctx


def test_every_documented_context_call_runs_as_written():
    ctx = make_ctx()
    model = ctx.classifier()
    steps = ctx.steps()
    opt, schedule = ctx.optimizer(list(model.parameters()), 1e-3, 0.05, steps)
    names = {"ctx": ctx, "split": "train", "model": model, "params": list(model.parameters()), "steps": steps,
             "opt": opt, "schedule": schedule, "step_module": tlbench.ClassificationStep(model)}
    calls = documented_calls()
    assert len(calls) >= 18, calls
    results = {}
    for expr in calls:
        value = eval(expr, {}, names)  # noqa: S307 - the page's own text
        results[expr.split("(")[0].split("[")[0]] = next(iter(value)) if inspect.isgenerator(value) else value
    assert isinstance(results["ctx.backbone"], tlbench.Backbone)
    assert isinstance(results["ctx.classifier"], tlbench.Classifier)
    assert set(results["ctx.predict"]) == set(ctx.eval_splits) == {"val", "test"}
    assert results["ctx.predict"]["test"].shape == (len(ctx.data["test"]), 10)
    assert isinstance(results["ctx.features"], tlbench.Features)
    assert isinstance(results["ctx.data"], tlbench.Split) and isinstance(results["ctx.train"], TrainOptions)
    assert len(results["ctx.optimizer"]) == 2 and results["ctx.steps"] == steps
    assert ctx.curve, "train_loop / fit recorded no loss curve"


def test_every_public_context_method_is_documented():
    documented = {expr[4:].split("(")[0].split("[")[0] for expr in documented_calls()}
    fields = {f.name for f in dataclasses.fields(CellContext)}
    public = {name for name, value in vars(CellContext).items() if not name.startswith("_") and name not in fields
              and (callable(value) or isinstance(value, (property, staticmethod)))}
    assert public - documented == set(), "document these in the CellContext table of docs/writing-plugins.md"


def test_train_loop_takes_0_2s_loss_function_with_a_deprecation_warning():
    ctx = make_ctx()
    model = ctx.classifier()
    before = [p.detach().clone() for p in model.parameters()]
    steps = ctx.steps()
    opt, schedule = ctx.optimizer(list(model.parameters()), 1e-2, 0.0, steps)
    seen = []

    def loss_of(inputs, labels, step):
        seen.append(step)
        return torch.nn.functional.cross_entropy(model(inputs), labels), len(labels)

    with pytest.warns(DeprecationWarning, match="0.4.0"):
        ctx.train_loop(model, opt, schedule, steps, loss_of)
    assert seen == list(range(steps))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_train_loop_without_a_train_step_is_a_one_line_type_error():
    ctx = make_ctx()
    model = ctx.classifier()
    opt, schedule = ctx.optimizer(list(model.parameters()), 1e-3, 0.0, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="pass a tlbench.TrainStep") as info:
            ctx.train_loop(model, opt, schedule, 2)
    assert "\n" not in str(info.value)


def test_the_documented_strategy_runs_as_a_third_party_plugin(tmp_path, monkeypatch, cli):
    code = named_block(PAGE, "my_strategy.py")
    (tmp_path / "my_strategy.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    suite = tiny_suite([{"plugin": "confidence_penalty", "beta": 0.2}], suite={"name": "third"})
    (tmp_path / "suite.toml").write_text(suite)
    result = cli("run", "suite.toml", "--plugin", "my_strategy", "--no-report")
    assert result.exit_code == 0, result.output
    from tlbench.run.store import Store
    store = Store(tmp_path / "results" / "third")
    try:
        [record] = store.records()
    finally:
        store.close()
    assert record.status == "ok" and record.metrics["test_acc"] > 0
    assert {"cross_entropy", "entropy"} <= set(record.train_curve[0])


def test_version_changelog_and_pyproject_agree():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert tlbench.__version__ == version == "0.3.0"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(version)}\b", changelog, re.M), "CHANGELOG.md has no section for the version"
    assert "train_loop" in changelog
