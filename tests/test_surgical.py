"""Surgical fine-tuning in partial_finetune (Lee et al. 2023): which blocks train (first, middle,
top, chosen indices) and Auto-RGN's per-block learning rates."""
import pytest
import torch
from pydantic import ValidationError
from helpers.stepped import stepped_context

from tlbench.builtins.backbones import tiny_cnn
from tlbench.builtins.strategies import partial_finetune as pf
from tlbench.builtins.strategies.partial_finetune import AutoRGN, PartialFinetuneOptions
from tlbench.contract.errors import UserError
from tlbench.plugins.host import load_registry
from tlbench.testing import check_strategy_plugin

TINY = lambda pretrained: tiny_cnn.build(tiny_cnn.TinyCNNOptions(width=8, input_size=8), pretrained)  # noqa: E731


def states(modules):
    return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("values, trained", [
    ({"blocks": "first", "k": 1}, [0]), ({"blocks": "first", "k": 2}, [0, 1]), ({"blocks": "middle", "k": 1}, [1]),
    ({"k": 1}, [2]), ({"blocks": [0, 2]}, [0, 2]), ({"blocks": "auto"}, [0, 1, 2]),
], ids=["first-1", "first-2", "middle-1", "top-1", "list", "auto"])
def test_only_the_chosen_blocks_train(values, trained):
    ctx = stepped_context(build=TINY)
    options = PartialFinetuneOptions(lr=3e-3, **values)
    model, classifier = pf.build_model(ctx, options)
    blocks = classifier.backbone.blocks()
    before = states(blocks)
    expected = sum(p.numel() for i in trained for p in blocks[i].parameters()) + \
        sum(p.numel() for p in classifier.head.parameters())
    assert sum(p.numel() for p in classifier.parameters() if p.requires_grad) == expected
    ctx.fit(model, options.lr, options.weight_decay)
    for i, (block, state) in enumerate(zip(blocks, before)):
        assert same(state, states([block])[0]) == (i not in trained), f"block {i}"


def test_new_options_stay_out_of_existing_cell_ids():
    old = {"k": 2, "lr": 1e-3, "weight_decay": 0.05, "bn_stats": "frozen", "layer_decay": 1.0}
    assert PartialFinetuneOptions().as_config() == old  # what partial_finetune cells hashed before
    assert PartialFinetuneOptions(blocks="first").as_config() == {**old, "blocks": "first"}


@pytest.mark.parametrize("bad", [dict(blocks=[-1]), dict(blocks=[]), dict(blocks="last"),
                                 dict(blocks="auto", layer_decay=0.5)])
def test_bad_block_choices_are_validation_errors(bad):
    with pytest.raises(ValidationError):
        PartialFinetuneOptions(**bad)


def test_blocks_outside_the_backbone_are_a_clear_error_at_build():
    ctx = stepped_context(build=TINY)
    with pytest.raises(UserError, match=r"blocks = \[0, 3\] but the backbone TinyCNN has only 3 blocks; give "
                                        r"indices between 0 and 2"):
        pf.run(ctx, PartialFinetuneOptions(blocks=[0, 3]))
    with pytest.raises(UserError, match=r"k = 4 but the backbone TinyCNN has only 3 blocks"):
        pf.run(ctx, PartialFinetuneOptions(blocks="first", k=4))


def test_auto_rgn_scales_are_the_normalised_relative_gradient_norms():
    ctx = stepped_context(build=TINY)
    model, classifier = pf.build_model(ctx, PartialFinetuneOptions(blocks="auto"))
    inputs, labels = next(ctx.batches())
    torch.nn.functional.cross_entropy(model(inputs), labels).backward()
    blocks = classifier.backbone.blocks()
    rgn = []
    for block in blocks:
        grads = torch.cat([p.grad.flatten() for p in block.parameters()])
        weights = torch.cat([p.detach().flatten() for p in block.parameters()])
        rgn.append((grads.norm() / weights.norm()).item())
    groups = pf.rgn_groups(classifier, 0.05)
    seen = []

    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            seen.append([(group.get("block"), group["lr"]) for group in self.param_groups])

    rgn_opt = AutoRGN(Recording(groups, lr=0.1), blocks)
    rgn_opt.step()
    assert rgn_opt.scales == pytest.approx([r / max(rgn) for r in rgn], rel=1e-5)
    assert max(rgn_opt.scales) == pytest.approx(1.0)
    for block, lr in seen[0]:  # each block's groups at lr times its scale, the head at lr
        assert lr == pytest.approx(0.1 * (1.0 if block is None else rgn_opt.scales[block]))
    assert all(group["lr"] == 0.1 for group in rgn_opt.optimizer.param_groups)  # restored for the schedule
    assert {id(p) for g in groups for p in g["params"]} == {id(p) for p in classifier.parameters()}


def test_auto_trains_every_block():
    ctx = stepped_context(build=TINY)
    outcome = pf.run(ctx, PartialFinetuneOptions(blocks="auto", lr=3e-3))
    assert outcome.trainable_params == outcome.total_params and ctx.trained_steps == 6


def test_conforms():
    for options in ({"blocks": "first", "k": 1}, {"blocks": "auto"}):
        check_strategy_plugin(load_registry().get("strategy", "partial_finetune"), options)
