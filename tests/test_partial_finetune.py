"""The partial_finetune strategy: the top k blocks and the head train, everything below is frozen."""
import pydantic
import pytest
import torch
from helpers.toy_cells import make_ctx

from tlbench.builtins.backbones import timm as timm_plugin
from tlbench.builtins.backbones import tiny_cnn
from tlbench.builtins.datasets.digits import DigitsOptions
from tlbench.builtins.datasets.digits import load as load_digits
from tlbench.builtins.strategies import partial_finetune as pf
from tlbench.builtins.strategies.partial_finetune import PartialFinetuneOptions
from tlbench.contract.errors import UserError

TINY = lambda pretrained: tiny_cnn.build(tiny_cnn.TinyCNNOptions(width=8, input_size=8), pretrained)  # noqa: E731
EFFNET = lambda pretrained: timm_plugin.build(  # noqa: E731
    timm_plugin.TimmOptions(model="test_efficientnet", weights="none", input_size=32), pretrained)


@pytest.fixture(scope="module")
def digits():
    return load_digits(DigitsOptions(image_size=8))


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_hook_and_options():
    [record] = pf.tlbench_strategies()
    assert record.name == "partial_finetune" and record.grid["lr"]
    for name, field in PartialFinetuneOptions.model_fields.items():
        assert field.description, name
    for bad in (dict(k=0), dict(lr=0), dict(bn_stats="sometimes")):
        with pytest.raises(pydantic.ValidationError):
            PartialFinetuneOptions(**bad)


@pytest.mark.parametrize("build, k", [(TINY, 1), (TINY, 2), (EFFNET, 2)], ids=["tiny-k1", "tiny-k2", "effnet-k2"])
def test_only_the_top_k_blocks_and_the_head_change(build, k, digits):
    ctx = make_ctx(build, digits, epochs=1, batch_size=128, min_steps=6)
    options = PartialFinetuneOptions(k=k, lr=3e-3)
    model, classifier = pf.build_model(ctx, options)
    blocks = classifier.backbone.blocks()
    expected = sum(p.numel() for b in blocks[-k:] for p in b.parameters()) + \
        sum(p.numel() for p in classifier.head.parameters())
    assert sum(p.numel() for p in classifier.parameters() if p.requires_grad) == expected

    before = [snapshot(b) for b in blocks]
    head = snapshot(classifier.head)
    everything = snapshot(classifier)
    ctx.fit(model, options.lr, options.weight_decay)

    for i, (block, state) in enumerate(zip(blocks, before)):
        if i < len(blocks) - k:  # frozen: weights and batch-norm statistics unchanged
            assert same(state, snapshot(block)), f"frozen block {i} changed"
        else:
            assert not same(state, snapshot(block)), f"trained block {i} did not change"
    assert not same(head, snapshot(classifier.head))
    # nothing outside the blocks and the head changed either
    inside = {id(t) for b in blocks[-k:] for t in [*b.parameters(), *b.buffers()]}
    inside |= {id(t) for t in classifier.head.parameters()}
    current = dict(classifier.state_dict(keep_vars=True))
    for name, old in everything.items():
        if id(current[name]) not in inside:
            assert torch.equal(old, current[name].detach()), name


def test_run_outcome_counts(digits):
    ctx = make_ctx(TINY, digits, epochs=1, batch_size=256)
    outcome = pf.run(ctx, PartialFinetuneOptions(k=1))
    backbone = TINY(True)
    top = sum(p.numel() for p in backbone.blocks()[-1].parameters())
    head = backbone.feature_dim * 10 + 10
    assert outcome.trainable_params == top + head
    assert outcome.total_params == sum(p.numel() for p in backbone.parameters()) + head
    assert set(outcome.logits) == {"val", "test"}


def test_k_larger_than_the_blocks_is_a_clear_error(digits):
    ctx = make_ctx(TINY, digits)
    with pytest.raises(UserError, match=r"k = 4 but the backbone TinyCNN has only 3 blocks"):
        pf.run(ctx, PartialFinetuneOptions(k=4))
    model, classifier = pf.build_model(ctx, PartialFinetuneOptions(k=3))  # all blocks: allowed
    assert all(p.requires_grad for p in classifier.parameters())


def test_bn_stats_update_re_estimates_frozen_statistics(digits):
    ctx = make_ctx(TINY, digits, epochs=1, batch_size=256)
    options = PartialFinetuneOptions(k=1, bn_stats="update")
    model, classifier = pf.build_model(ctx, options)
    first = snapshot(classifier.backbone.blocks()[0])
    ctx.fit(model, options.lr)
    changed = {k for k, v in snapshot(classifier.backbone.blocks()[0]).items() if not torch.equal(v, first[k])}
    assert changed == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
