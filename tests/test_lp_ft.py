"""The lp_ft strategy (Kumar et al. 2022) and the probe head it starts from."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from helpers.stepped import stepped_context

from tlbench.builtins.strategies import linear_probe, lp_ft
from tlbench.plugins.host import load_registry
from tlbench.train.strategies import ABSENT, Probe, ProbeOptions, fit_probe


def test_registered_with_documented_options():
    record = load_registry().get("strategy", "lp_ft")
    assert record.finetunes_pretrained and set(record.init_options) == {"C", "max_iter"}
    assert record.grid["lr"] and set(record.space) == {"lr", "weight_decay"}
    for name, field in lp_ft.LPFTOptions.model_fields.items():
        assert field.description, name


def probe_of(features: np.ndarray, labels: np.ndarray) -> Probe:
    scaler = StandardScaler().fit(features)
    return Probe(scaler, LogisticRegression().fit(scaler.transform(features), labels))


@pytest.mark.parametrize("classes", [[0, 1, 2], [0, 2], [1, 2]], ids=["three", "one-absent", "two"])
def test_the_probe_head_computes_the_probe(classes):
    rng = np.random.default_rng(0)
    labels = np.array(classes * 20)
    features = (rng.normal(size=(len(labels), 5)) + labels[:, None]).astype(np.float32)
    features[:, 3] = 1.0  # a constant feature: sklearn's scale 1
    probe = probe_of(features, labels)
    head = torch.nn.Linear(5, 3)
    probe.load_into(head)
    x = torch.as_tensor(features)
    expected = probe.logits(x, 3)
    got = head(x).detach()
    present = torch.as_tensor(classes)
    assert torch.allclose(got[:, present], expected[:, present], atol=1e-4)
    for absent in set(range(3)) - set(classes):
        assert torch.all(head.weight[absent] == 0) and head.bias[absent] == ABSENT


def test_it_starts_from_the_probe():
    """Before fine-tuning (ctx.fit made a no-op), LP-FT's model predicts as the linear probe."""
    probe = linear_probe.run(stepped_context(), linear_probe.LinearProbeOptions())
    ctx = stepped_context()
    ctx.fit = lambda model, *args, **kwargs: None
    start = lp_ft.run(ctx, lp_ft.LPFTOptions())
    for name in probe.logits:
        assert torch.allclose(start.logits[name], probe.logits[name], atol=1e-4), name


def test_it_fine_tunes_every_weight():
    ctx = stepped_context()
    outcome = lp_ft.run(ctx, lp_ft.LPFTOptions(lr=3e-3))
    model, _ = ctx.deployed
    assert outcome.trainable_params == outcome.total_params == sum(p.numel() for p in model.parameters())
    assert ctx.trained_steps == 6


def test_fit_probe_charges_the_cell():
    ctx = stepped_context()
    probe, features = fit_probe(ctx, ProbeOptions(C=0.5))
    assert ctx.clock.images == len(ctx.data["train"]) and ctx.clock.train_seconds > 0
    assert probe.model.C == 0.5 and probe.size == probe.model.coef_.size + probe.model.intercept_.size


