"""What a cell's model costs to serve, measured on the cell's device after training.

The deployed model is the one the strategy predicts with (``CellContext.predict``): for LoRA the
merged model (``merge_and_unload``), which has the plain backbone's inference cost. Its size is
the byte length of its state dict (parameters and buffers) serialised as safetensors, in memory.
Where a strategy trained only part of a pretrained model, the alternative deployment is the
shared base plus a small file of what was trained: ``adapter_bytes`` is that file's size (LoRA:
the low-rank matrices and the new head, as the strategy hands them to ``predict``; the linear
probe: its head).

Speed: the median of timed calls at batch 1 after warm-up (``latency_ms``), and examples per
second at the evaluation batch size (``throughput``), under the cell's precision. A few calls
only: about two seconds for a small model on a CPU. Speed depends on the architecture, not on
the weights, so a worker times each architecture once per input shape, device and precision
(:func:`speed_key`: fine-tuning, merged LoRA, scratch and the probe's backbone + head of one
backbone share one measurement) and sizes every model.
"""
from __future__ import annotations

import contextlib
import hashlib
import statistics
import time
from dataclasses import dataclass

import torch
from safetensors.torch import save
from torch import nn

from tlbench.contract.values import Split, shape_of, take

#: latency: warm-up calls (at least LATENCY_WARMUP, for WARMUP_SECONDS: a thread pool that has been
#: idle can take a second to come back on a busy machine), then timed calls until LATENCY_SECONDS
#: or LATENCY_CALLS calls
LATENCY_WARMUP, WARMUP_SECONDS, LATENCY_SECONDS, LATENCY_CALLS = 2, 0.5, 0.3, (5, 30)
#: throughput: one warm-up batch, then timed batches until this many seconds or THROUGHPUT_CALLS
THROUGHPUT_SECONDS, THROUGHPUT_CALLS = 0.5, (1, 3)


@dataclass(frozen=True)
class Deployment:
    """The deployment cost of one model (the ``deployed_*``, ``adapter_bytes``, ``latency_ms``
    and ``throughput`` fields of a record's cost)."""

    deployed_params: int
    deployed_bytes: int
    adapter_bytes: int | None
    latency_ms: float
    throughput: float

    def cost_fields(self) -> dict:
        return dict(self.__dict__)


def state_bytes(tensors: dict[str, torch.Tensor]) -> int:
    """Bytes of ``tensors`` saved as one safetensors file (tensors sharing storage, such as tied
    weights, are saved once, as ``save_model`` does)."""
    unique, seen = {}, set()
    for name, tensor in tensors.items():
        key = (tensor.device, tensor.data_ptr(), tensor.dtype, tuple(tensor.shape))
        if key not in seen:
            seen.add(key)
            unique[name] = tensor.detach().to("cpu", copy=True).contiguous()
    return len(save(unique))


def model_bytes(model: nn.Module) -> int:
    """Bytes of the model's state dict (parameters and buffers) as safetensors."""
    return state_bytes(model.state_dict())


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def speed_key(model: nn.Module, split: Split, batch_size: int, precision_name: str) -> str:
    """What a model's speed on rows of ``split`` depends on: its architecture (``repr``: every
    module's type and shape-giving settings, e.g. a convolution's channels, kernel and stride), its
    tensors' dtypes, the inputs' shapes, the batch size, the device and the precision."""
    dtypes = sorted({str(t.dtype) for t in model.state_dict().values()})
    shapes = shape_of(take(split.inputs, slice(0, 1)))
    text = "\n".join([repr(model), str(dtypes), str(shapes), str(min(batch_size, len(split))),
                      str(split.labels.device), precision_name])
    return hashlib.sha256(text.encode()).hexdigest()


def measure(model: nn.Module, split: Split, batch_size: int, precision=contextlib.nullcontext,
            adapter: dict[str, torch.Tensor] | None = None, speed: tuple[float, float] | None = None) -> Deployment:
    """Size and speed of ``model`` (called as ``model(inputs)`` on rows of ``split``, which lies on
    the model's device, under the ``precision`` context), and the size of ``adapter`` if given.
    ``speed``: the ``(latency_ms, throughput)`` of a model with the same :func:`speed_key`, timed
    before; given, the model is not timed again."""
    return Deployment(parameter_count(model), model_bytes(model),
                      state_bytes(adapter) if adapter is not None else None,
                      *(speed or _speed(model, split, batch_size, precision)))


@torch.no_grad()
def _speed(model: nn.Module, split: Split, batch_size: int, precision) -> tuple[float, float]:
    """(median latency in ms at batch 1, examples per second at ``batch_size``) of ``model``."""
    device = split.labels.device
    was_training = model.training
    model.eval()
    one = take(split.inputs, slice(0, 1))
    batch = take(split.inputs, slice(0, min(batch_size, len(split))))

    def call(inputs) -> float:
        start = time.perf_counter()
        with precision():
            model(inputs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    _timed(lambda: call(one), WARMUP_SECONDS, LATENCY_WARMUP, 10 ** 6)
    latency = _timed(lambda: call(one), LATENCY_SECONDS, *LATENCY_CALLS)
    call(batch)
    per_batch = _timed(lambda: call(batch), THROUGHPUT_SECONDS, *THROUGHPUT_CALLS)
    model.train(was_training)
    return 1e3 * statistics.median(latency), min(batch_size, len(split)) / statistics.median(per_batch)


def _timed(call, seconds: float, at_least: int, at_most: int) -> list[float]:
    """Durations of repeated ``call()``s: at least ``at_least``, until ``seconds`` or ``at_most``."""
    times = []
    while len(times) < at_least or (sum(times) < seconds and len(times) < at_most):
        times.append(call())
    return times
