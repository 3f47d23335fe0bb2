"""BitFit: only the backbone's biases and the new head train; every other weight and the frozen
batch-norm statistics stay as pretrained."""
import torch
from helpers.toy_cells import make_ctx

from tlbench.builtins.backbones import tiny_cnn
from tlbench.builtins.datasets.digits import DigitsOptions
from tlbench.builtins.datasets.digits import load as load_digits
from tlbench.builtins.strategies import bitfit
from tlbench.train.strategies import FrozenNormStats, batch_norms

TINY = lambda pretrained: tiny_cnn.build(tiny_cnn.TinyCNNOptions(width=8, input_size=8), pretrained)  # noqa: E731


def test_only_biases_and_head_train():
    ctx = make_ctx(TINY, load_digits(DigitsOptions(image_size=8)), batch_size=128, min_steps=5)
    model = bitfit.biases_only(ctx.classifier(pretrained=True))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained and all(n.endswith(".bias") or n.startswith("head.") for n in trained)
    assert any(".stages.0.1.bias" in n for n in trained)  # batch-norm biases are bias terms too
    outcome = bitfit.run(ctx, bitfit.BitFitOptions(lr=1e-2))
    backbone = TINY(True)
    biases = sum(p.numel() for n, p in backbone.named_parameters() if n.endswith("bias"))
    assert outcome.trainable_params == biases + 32 * 10 + 10
    assert outcome.total_params == sum(p.numel() for p in backbone.parameters()) + 32 * 10 + 10

    # run() trained its own fresh model: check what moved on one trained like it
    ctx = make_ctx(TINY, load_digits(DigitsOptions(image_size=8)), batch_size=128, min_steps=5)
    model = bitfit.biases_only(ctx.classifier(pretrained=True))
    ctx.fit(FrozenNormStats(model, batch_norms(model)), 1e-2, 0.0)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.endswith(".bias") or k.startswith("head.") for k in changed), changed
    assert any(k.startswith("backbone.") for k in changed)  # the biases moved, not only the head
