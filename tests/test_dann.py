"""DANN: the gradient-reversal layer, the paper's schedules, feature alignment on a toy shift, the
target labels never read, the skip on a dataset without target domain, and a run end to end."""
import csv
import json
import math
import sqlite3

import numpy as np
import pydantic
import pytest
import torch
from click.testing import CliRunner
from helpers.toy_cells import ToyShiftOptions, make_ctx
from helpers.toy_cells import load as load_toy_shift
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from torch import nn

import tlbench
from tlbench.contract.backbone import Backbone
from tlbench.builtins.backbones import tiny_cnn
from tlbench.builtins.strategies import dann
from tlbench.builtins.strategies.dann import DannOptions, modules
from tlbench.cli import main
from tlbench.contract.values import Split
from tlbench.testing import tiny_suite

TINY = lambda pretrained: tiny_cnn.build(tiny_cnn.TinyCNNOptions(width=8, input_size=8), pretrained)  # noqa: E731


def test_hook_and_options():
    record = dann.tlbench_strategies()[0]
    assert record.name == "dann" and record.needs_target_domain and record.grid["lr"]
    for name, field in DannOptions.model_fields.items():
        assert field.description, name
    for bad in (dict(lambda_max=-1), dict(gamma=0), dict(hidden=0), dict(disc_dropout=1),
                dict(optimizer="adam"), dict(lr_schedule="step"), dict(backbone_lr_mult=2)):
        with pytest.raises(pydantic.ValidationError):
            DannOptions(**bad)


@pytest.mark.parametrize("lambd", [0.0, 0.3, 1.0, 2.5])
def test_gradient_reversal_is_identity_forward_and_minus_lambda_backward(lambd):
    x = torch.randn(5, 7, requires_grad=True)
    upstream = torch.randn(5, 7)
    y = modules.grad_reverse(x, lambd)
    assert torch.equal(y, x)
    y.backward(upstream)
    assert torch.equal(x.grad, -lambd * upstream)
    # through a layer: the layer's own gradient is untouched, only what flows below is reversed
    layer = nn.Linear(7, 3)
    x.grad = None
    layer(modules.grad_reverse(x, lambd)).sum().backward()
    reference = torch.ones(5, 3) @ layer.weight
    torch.testing.assert_close(x.grad, -lambd * reference)


def test_paper_schedules():
    assert dann.lambda_schedule(0.0) == 0.0
    assert dann.lambda_schedule(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert dann.lambda_schedule(0.5, lambda_max=0.5, gamma=10) == pytest.approx(0.5 * (2 / (1 + math.exp(-5)) - 1))
    assert dann.dann_lr_factor(0.0) == 1.0
    assert dann.dann_lr_factor(1.0) == pytest.approx(11 ** -0.75)
    # the optimizer follows mu_p = mu_0 / (1 + 10 p)^0.75, the backbone at a tenth
    model = modules.DannModel(_classifier(), modules.DomainDiscriminator(4, 8))
    ctx = make_ctx(TINY, load_toy_shift(ToyShiftOptions()))
    opt, schedule = dann.make_optimizer(ctx, model, DannOptions(lr=0.01), steps=10)
    for step in range(5):
        opt.step()
        schedule.step()
    assert opt.param_groups[1]["lr"] == pytest.approx(0.01 * dann.dann_lr_factor(0.5))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001 * dann.dann_lr_factor(0.5))
    assert opt.param_groups[0]["weight_decay"] == 0.05 and isinstance(opt, torch.optim.AdamW)
    opt, _ = dann.make_optimizer(ctx, model, DannOptions(optimizer="sgd"), steps=10)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.9
    assert opt.param_groups[0]["weight_decay"] == 1e-3


def _classifier():
    from tlbench.contract.backbone import Classifier
    return Classifier(VectorBackbone(in_dim=3, feature_dim=4), 2)


# ---------------------------------------------------------------------------------------------
# alignment on a toy shift


class VectorBackbone(Backbone):
    """A small MLP feature extractor for vectors (no image preprocessing)."""

    def __init__(self, in_dim: int = 10, feature_dim: int = 16):
        super().__init__()
        self.feature_dim = feature_dim
        self.net = nn.Sequential(nn.Linear(in_dim, 32), nn.ReLU(), nn.Linear(32, feature_dim), nn.ReLU())

    def prepare(self, inputs):
        return inputs.float()

    def forward(self, x):
        return self.net(x)


def blobs(shift: float, seed: int, n: int = 600) -> Split:
    """Three Gaussian classes in the first two of ten dimensions; the target domain is offset by
    ``shift`` along the eight others, a nuisance direction that carries no class information."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 10, generator=g)
    x[:, :2] += torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])[y]
    x[:, 2:] += shift
    return Split(x, y)


def held_out_features(model: modules.DannModel, ctx) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        source = model.backbone.extract(torch.cat([ctx.data["val"].inputs, ctx.data["test"].inputs]))
        target = model.backbone.extract(torch.cat([ctx.data["target_val"].inputs, ctx.data["target_test"].inputs]))
    return source, target


def domain_separability(source: torch.Tensor, target: torch.Tensor) -> float:
    """Cross-validated accuracy of a *fresh* logistic-regression domain classifier on the features."""
    x = torch.cat([source, target]).numpy()
    y = np.r_[np.zeros(len(source)), np.ones(len(target))]
    return cross_val_score(LogisticRegression(max_iter=2000), x, y, cv=5).mean()


def mean_distance(source: torch.Tensor, target: torch.Tensor) -> float:
    """Distance between the domains' feature means (a linear-kernel MMD), in units of the features'
    within-domain spread, so that shrinking the features does not count as aligning them."""
    spread = torch.cat([source - source.mean(0), target - target.mean(0)]).pow(2).sum(1).mean().sqrt()
    return ((source.mean(0) - target.mean(0)).norm() / spread).item()


def test_domain_loss_aligns_features_on_a_toy_shift():
    shifted = tlbench.LoadedDataset(["a", "b", "c"], {"all": blobs(0.0, 0)}, {"all": blobs(1.0, 1)})
    results = {}
    for lambda_max in (0.0, 1.0):  # 0: source-only training with the same recipe
        ctx = make_ctx(lambda pretrained: VectorBackbone(), shifted, epochs=20, batch_size=32, seed=0)
        model = dann.train(ctx, DannOptions(lambda_max=lambda_max, backbone_lr_mult=1.0))
        logits, domain_acc = dann.evaluate(ctx, model)
        source_acc = (logits["test"].argmax(1) == ctx.data["test"].labels).float().mean().item()
        features = held_out_features(model, ctx)
        results[lambda_max] = dict(separability=domain_separability(*features), distance=mean_distance(*features),
                                   domain_acc=domain_acc, source_acc=source_acc)
    source_only, adapted = results[0.0], results[1.0]
    assert source_only["separability"] > 0.8, results  # the offset is plainly visible in source-only features
    # ... and less so after adversarial training: for a fresh classifier, in distance, and for DANN's own one
    assert adapted["separability"] < source_only["separability"] - 0.05, results
    assert adapted["distance"] < 0.8 * source_only["distance"], results
    assert adapted["domain_acc"] < source_only["domain_acc"] - 0.1, results
    assert adapted["source_acc"] > 0.7, results  # while the classes stay separable (3 classes: chance 0.33)


# ---------------------------------------------------------------------------------------------
# one cell on the toy image shift


@pytest.fixture(scope="module")
def toy_shift():
    return load_toy_shift(ToyShiftOptions(image_size=8))


def test_target_labels_are_never_read(toy_shift):
    options = DannOptions(hidden=32, backbone_lr_mult=1.0)
    outs = []
    for labels in ("true", "scrambled"):
        ctx = make_ctx(TINY, toy_shift, epochs=1, batch_size=64, min_steps=5)
        if labels == "scrambled":
            target = ctx.data["target_train"]
            ctx.data["target_train"] = Split(target.inputs, torch.full_like(target.labels, -1))
        outs.append(dann.run(ctx, options))
    for split in outs[0].logits:
        assert torch.equal(outs[0].logits[split], outs[1].logits[split]), split
    assert outs[0].extra == outs[1].extra


def test_run_outcome(toy_shift):
    ctx = make_ctx(TINY, toy_shift, epochs=1, batch_size=64, min_steps=4)
    outcome = dann.run(ctx, DannOptions(hidden=32))
    assert set(outcome.logits) == {"val", "test", "target_val", "target_test"}
    assert all(v.shape[1] == 10 for v in outcome.logits.values())
    backbone = TINY(True)
    params = sum(p.numel() for p in backbone.parameters()) + 32 * 10 + 10 + \
        sum(p.numel() for p in modules.DomainDiscriminator(32, 32).parameters())
    assert outcome.trainable_params == outcome.total_params == params
    assert 0.0 <= outcome.extra["domain_acc"] <= 1.0
    assert ctx.steps() == math.ceil(len(ctx.data["train"]) / 64)  # one epoch over the labelled source
    assert ctx.clock.images == len(ctx.data["train"]) * 2  # each source image comes with a target image


def test_iterations_scale_with_the_budget_of_a_budget_check_cell(toy_shift):
    for budget, steps in ((1.0, 3), (2.0, 6)):
        ctx = make_ctx(TINY, toy_shift, epochs=1, batch_size=64)
        ctx.train = ctx.train.model_copy(update={"budget": budget})
        dann.train(ctx, DannOptions(hidden=8, iterations=3))
        assert ctx.trained_steps == steps and ctx.stopped == "cap"


# ---------------------------------------------------------------------------------------------
# through the command line

def dann_suite(dataset: str) -> str:
    return tiny_suite([{"plugin": "dann", "lr": 3e-3, "hidden": 64}, {"plugin": "finetune", "lr": 3e-3},
                       {"plugin": "target_oracle", "lr": 3e-3}], suite={"name": "dann"},
                      train={"epochs": 2, "batch_size": 128},
                      backbone={"plugin": "tiny_cnn", "width": 8, "input_size": 8}, dataset={"plugin": dataset})


def test_dann_is_skipped_with_a_reason_on_a_dataset_without_target_domain(write_suite, cli):
    path = write_suite(dann_suite("digits"))
    result = CliRunner(env={"COLUMNS": "300"}).invoke(main, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "skip: strategy 'dann' needs a target domain and dataset 'digits' has none" in result.stdout
    assert "1 to run, 0 already done, 2 skipped" in result.stdout  # dann and target_oracle


def shift_datasets():
    """The toy pair of the tests, and the built-in digits shift pair where it is installed."""
    import warnings

    from tlbench.contract.errors import UserError
    from tlbench.plugins.loading import plugin_manager
    from tlbench.plugins.host import Host
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registry = Host(plugin_manager()[0]).registry
    try:
        registry.get("dataset", "digits-printed2hand")
        builtin = pytest.param("digits-printed2hand")
    except UserError:
        builtin = pytest.param("digits-printed2hand", marks=pytest.mark.skip(reason="shift_digits not installed"))
    return ["toy-shift", builtin]


@pytest.mark.parametrize("dataset", shift_datasets())
def test_dann_runs_end_to_end_on_a_shift_pair(dataset, write_suite, cli):
    path = write_suite(dann_suite(dataset))
    result = cli("run", path, "--no-report", "--plugin", "helpers.toy_cells")
    assert result.exit_code == 0, result.output
    with open(path.parent / "results/dann/results.csv") as f:
        rows = {r["strategy"]: r for r in csv.DictReader(f)}
    assert rows["dann"]["status"] == "ok" and rows["finetune"]["status"] == "ok"
    assert 0 <= float(rows["dann"]["test_acc"]) <= 1
    assert int(rows["dann"]["trainable_params"]) > int(rows["finetune"]["trainable_params"])  # + discriminator
    db = sqlite3.connect(path.parent / "results/dann/tlbench.sqlite")
    records = [json.loads(r[0]) for r in db.execute("SELECT record FROM records")]
    [record] = [r for r in records if r["strategy"] == "dann"]
    assert {"test_acc", "source_test_acc", "target_val_acc", "domain_acc"} <= set(record["metrics"])
    assert record["cost"]["examples_per_second"] > 0
    # hyper-parameters are selected on source validation, except the oracle's, on target validation
    by_strategy = {r["strategy"]: r["metrics"] for r in records}
    assert by_strategy["target_oracle"]["val_acc"] == by_strategy["target_oracle"]["target_val_acc"]
    assert by_strategy["finetune"]["val_acc"] != by_strategy["finetune"]["target_val_acc"]


# ---------------------------------------------------------------------------------------------
# the reference recipe: iterations, the lambda = 0 control, one compiled graph


def test_iterations_size_the_run_and_its_schedules(toy_shift):
    ctx = make_ctx(TINY, toy_shift, epochs=1, batch_size=64)
    dann.train(ctx, DannOptions(hidden=16, iterations=7))
    assert ctx.clock.images == 7 * 2 * 64  # 7 steps of 64 source and 64 target images, whatever [train] says
    opt, schedule = dann.make_optimizer(ctx, modules.DannModel(ctx.classifier(), modules.DomainDiscriminator(32, 8)),
                                        DannOptions(lr=0.01), steps=20000)
    for _ in range(10000):  # halfway through TLlib's 20 x 1000 iterations
        schedule.step()
    assert opt.param_groups[1]["lr"] == pytest.approx(0.01 * (1 + 10 * 0.5) ** -0.75)  # the head, at 10x
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001 * (1 + 10 * 0.5) ** -0.75)  # the backbone


def test_source_only_control_is_dann_without_the_adversary(toy_shift):
    [adapt, control] = dann.tlbench_strategies()
    assert control.name == "dann_source_only" and control.role == "baseline" and control.needs_target_domain
    assert control.grid == adapt.grid  # the same tuning budget
    assert set(control.options.model_fields) == set(DannOptions.model_fields) - {"lambda_max", "gamma"}
    with pytest.raises(pydantic.ValidationError):
        control.options(lambda_max=1.0)
    outs = []
    for run, options in ((control.run, control.options(hidden=16)), (dann.run, DannOptions(hidden=16, lambda_max=0))):
        ctx = make_ctx(TINY, toy_shift, epochs=1, batch_size=64, min_steps=3)
        outs.append(run(ctx, options))
    for split in outs[0].logits:
        assert torch.equal(outs[0].logits[split], outs[1].logits[split]), split
    # with lambda = 0 the domain loss sends no gradient into the backbone
    model = modules.DannModel(_classifier(), modules.DomainDiscriminator(4, 8))
    step = modules.DannStep(model, _Fixed(torch.randn(6, 3)), DannOptions(lambda_max=0.0))
    step.advance(5, 10)
    out = step(torch.randn(6, 3), torch.zeros(6, dtype=torch.long))
    out.components["domain_loss"].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.backbone.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.discriminator.parameters())


class _Fixed:
    """A target sampler that always gives the same batch."""

    def __init__(self, inputs):
        self.inputs = inputs

    def take(self, n):
        return self.inputs[:n]


def test_a_compiled_step_compiles_once_while_lambda_changes(monkeypatch):
    """With [train] compile, lambda changes at every step (a tensor buffer) and the step is
    traced once: counted with dynamo's CompileCounter backend (tracing and guards as in a real
    compile, no code generation)."""
    import torch._dynamo
    from torch._dynamo.testing import CompileCounter

    from tlbench.train import context as context_module
    counter = CompileCounter()
    real_compile = torch.compile
    monkeypatch.setattr(context_module.torch, "compile",
                        lambda module, **kwargs: real_compile(module, backend=counter, dynamic=False))
    torch._dynamo.reset()
    shifted = tlbench.LoadedDataset(["a", "b", "c"], {"all": blobs(0.0, 0, n=300)}, {"all": blobs(1.0, 1, n=300)})
    ctx = make_ctx(lambda pretrained: VectorBackbone(), shifted, batch_size=16, min_steps=12)
    ctx.train = ctx.train.model_copy(update={"compile": True})
    lambdas = []
    original = modules.DannStep.advance

    def advance(self, step, steps):
        original(self, step, steps)
        lambdas.append(float(self.lambd))
        if step == 2:
            counted[0] = counter.frame_count
    counted = [None]
    monkeypatch.setattr(modules.DannStep, "advance", advance)
    dann.train(ctx, DannOptions(hidden=8, iterations=12, backbone_lr_mult=1.0))
    assert len(set(lambdas)) == 12  # a new lambda at every step
    assert counter.frame_count >= 1 and counter.frame_count == counted[0]  # no graph after the first steps
    torch._dynamo.reset()
