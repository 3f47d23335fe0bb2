"""Deployment cost: exact sizes of merged models and adapters, and measured speed."""
import peft
import pytest
import torch
from safetensors.torch import save
from torch import nn

from tlbench.train import deploy
from tlbench.builtins.strategies import lora
from tlbench.contract.values import Split
from tlbench.testing import tiny_context


def data_bytes(tensors: dict[str, torch.Tensor]) -> int:
    """What ``deploy.state_bytes`` must count beyond the safetensors header: the raw tensors."""
    blob = save({k: v.detach().contiguous() for k, v in tensors.items()})
    return len(blob) - 8 - int.from_bytes(blob[:8], "little")


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(16, 8)  # 136 parameters
        self.head = nn.Linear(8, 3)  # 27

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def test_merged_model_and_adapter_sizes_by_arithmetic():
    base = Tiny()
    model = peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules=["body"]))
    model.base_model.model.head.requires_grad_(True)
    adapter = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert sum(p.numel() for p in adapter.values()) == 2 * 16 + 8 * 2 + 27  # A, B, head
    merged = model.merge_and_unload()
    split = Split(torch.randn(10, 16), torch.zeros(10, dtype=torch.long))
    cost = deploy.measure(merged, split, batch_size=4, adapter=adapter)
    assert cost.deployed_params == 163
    header = deploy.state_bytes(merged.state_dict()) - data_bytes(merged.state_dict())
    assert cost.deployed_bytes == header + 163 * 4  # fp32: four bytes a parameter, nothing else
    assert data_bytes(adapter) == 75 * 4
    assert cost.adapter_bytes == deploy.state_bytes(adapter) < cost.deployed_bytes
    assert cost.latency_ms > 0 and cost.throughput > 0


def test_tied_weights_are_counted_once():
    model = nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 50, bias=False))
    model[1].weight = model[0].weight
    assert deploy.parameter_count(model) == 400
    assert data_bytes({"w": model[0].weight}) == 1600
    assert deploy.model_bytes(model) == deploy.state_bytes({"0.weight": model[0].weight})


def test_lora_strategy_hands_its_merged_model_and_adapter_to_predict():
    ctx = tiny_context()
    outcome = lora.run(ctx, lora.LoraOptions(r=2))
    model, adapter = ctx.deployed
    plain = ctx.classifier(pretrained=True)
    cost = deploy.measure(model, ctx.data["test"], ctx.train.eval_batch_size, ctx.autocast, adapter)
    # merging leaves the plain architecture: same parameters, same bytes
    head = sum(p.numel() for p in plain.head.parameters())
    assert cost.deployed_params == deploy.parameter_count(plain)
    assert outcome.total_params - cost.deployed_params == outcome.trainable_params - head  # the LoRA matrices
    assert cost.deployed_bytes == deploy.model_bytes(plain)
    # the adapter file holds exactly what trained: the low-rank matrices and the head, in fp32
    assert any("lora_A" in name for name in adapter) and any("head" in name for name in adapter)
    assert data_bytes(adapter) == 4 * outcome.trainable_params
    assert cost.adapter_bytes < cost.deployed_bytes


@pytest.mark.parametrize("batch", [1, 7])
def test_speed_is_measured_on_rows_of_the_split(batch):
    calls = []

    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, x):
            calls.append(len(x))
            return self.lin(x)

    split = Split(torch.randn(20, 4), torch.zeros(20, dtype=torch.long))
    cost = deploy.measure(Counting(), split, batch_size=batch)
    assert set(calls) == {1, batch}  # batch 1 for latency, the eval batch for throughput
    assert calls.count(1) >= deploy.LATENCY_WARMUP + deploy.LATENCY_CALLS[0]
    assert cost.adapter_bytes is None and cost.latency_ms > 0 and cost.throughput > 0


def test_one_architecture_is_timed_once_whatever_its_weights():
    split = Split(torch.randn(20, 1, 8, 8), torch.zeros(20, dtype=torch.long))

    def net(stride=1, seed=0):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(1, 4, 3, stride=stride), nn.Flatten())

    key = deploy.speed_key(net(seed=0), split, 8, "fp32")
    assert deploy.speed_key(net(seed=1), split, 8, "fp32") == key  # other weights: same speed
    assert deploy.speed_key(net(stride=2), split, 8, "fp32") != key  # same tensors, other stride
    assert deploy.speed_key(net(), split, 4, "fp32") != key
    assert deploy.speed_key(net(), split, 8, "bf16") != key
    assert deploy.speed_key(net(), Split(torch.randn(20, 1, 9, 9), split.labels), 8, "fp32") != key

    timed = []
    model = net()
    model.register_forward_hook(lambda *_: timed.append(1))
    cost = deploy.measure(model, split, 8, speed=(1.5, 200.0))
    assert not timed and (cost.latency_ms, cost.throughput) == (1.5, 200.0)
    assert cost.deployed_params == deploy.parameter_count(model)  # sized all the same


def test_a_suite_times_each_architecture_once(write_suite, cli):
    """finetune and the probe of one backbone deploy the same network: one timing, every cell sized."""
    import pandas as pd
    assert cli("run", write_suite(), "--no-report").exit_code == 0
    frame = pd.read_csv("results/tiny/results.csv")
    assert set(frame.strategy) == {"finetune", "linear_probe"} and len(frame) == 12
    assert frame.latency_ms.nunique() == 1 and frame.throughput.nunique() == 1
    assert frame.deployed_bytes.notna().all()


def test_raw_list_inputs_get_a_speed_key_and_are_measured():
    class Lengths(nn.Module):  # a backbone without an encoder: it reads the raw strings
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(1, 2)

        def forward(self, texts):
            return self.lin(torch.tensor([[float(len(t))] for t in texts]))

    split = Split(["a", "bb", "ccc", "dddd"], torch.zeros(4, dtype=torch.long))
    key = deploy.speed_key(Lengths(), split, 2, "fp32")
    assert key == deploy.speed_key(Lengths(), split, 2, "fp32") != deploy.speed_key(Lengths(), split, 4, "fp32")
    cost = deploy.measure(Lengths(), split, 2)
    assert cost.latency_ms > 0 and cost.deployed_params == 4
