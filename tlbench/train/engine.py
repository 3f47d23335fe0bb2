"""The shared train and evaluation loops: device placement, bf16 autocast on CUDA, batches sliced
from device-resident tensors, timing and peak memory."""
from __future__ import annotations

import contextlib
import math
import os
import threading
import time

import psutil
import torch
from torch import nn

from tlbench.contract.errors import Diverged, UserError
from tlbench.contract.values import Split


def place(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device``, its convolution weights channels-last (NHWC), as image batches
    are prepared (:meth:`tlbench.modalities.image.ImageBackbone.prepare`): the faster layout for convolutions
    on GPUs and on CPUs alike (on 2 CPU cores a MobileNetV2 training step took 0.6x the CPU time;
    bench/RESULTS.md). Tensors that are not 4-D are unchanged."""
    return model.to(device).to(memory_format=torch.channels_last)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (CUDA if present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ..."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device {name!r} is not a device; use \"auto\", \"cpu\" or \"cuda:N\"") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} but no CUDA device is available; use \"auto\" or \"cpu\"")
    return device


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast where it pays (CUDA, precision auto|bf16), else nothing."""
    if precision_name(device, precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def precision_name(device: torch.device, precision: str) -> str:
    """What ``autocast(device, precision)`` computes in: ``"bf16"`` or ``"fp32"``."""
    return "bf16" if precision == "bf16" or (precision == "auto" and device.type == "cuda") else "fp32"


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch_size: int, precision_ctx, call=None) -> torch.Tensor:
    """Float outputs of ``call`` (default: ``model`` itself) for every example, on the CPU, in order."""
    call = call or model
    was_training = model.training
    model.eval()
    outs = []
    for inputs, _ in split.batches(batch_size):
        with precision_ctx():
            outs.append(call(inputs).float().cpu())
    model.train(was_training)
    return torch.cat(outs)


def cosine_with_warmup(optimizer, total_steps: int, warmup_steps: int, decay: str = "cosine"):
    """Linear warm-up over ``warmup_steps``, then cosine decay to 0 at ``total_steps``
    (``decay="constant"``: the peak rate to the end)."""
    def factor(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if decay == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def param_groups(named: list[tuple[str, nn.Parameter]], lr: float, weight_decay: float,
                 scale=lambda parameter: 1.0) -> list[dict]:
    """Optimizer groups of the trainable parameters, as timm's ``param_groups_weight_decay``:
    weight decay on weight matrices and kernels, none on biases and normalisation parameters
    (1-d tensors); each parameter at ``lr * scale(parameter)`` (layer-wise decay)."""
    groups: dict[tuple[float, bool], dict] = {}
    for _, p in named:
        if p.requires_grad:
            factor, decays = scale(p), p.ndim > 1
            group = groups.setdefault((factor, decays), {"params": [], "lr": lr * factor,
                                                         "weight_decay": weight_decay if decays else 0.0})
            group["params"].append(p)
    return list(groups.values())


def planned_steps(n_examples: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """Optimizer steps for ``epochs`` passes, but at least ``min_steps`` (small label fractions)."""
    return max(min_steps, epochs * math.ceil(n_examples / batch_size))


def budgeted(count: int, budget: float) -> int:
    """``count`` (steps, or evaluations of patience) times ``budget`` (``[train] budget``), rounded
    up, at least 1: what a budget-check cell gets where its base cell gets ``count``."""
    return max(1, math.ceil(round(count * budget, 6)))


class FiniteCheck:
    """Raises :class:`Diverged` once a loss was not finite, without a GPU sync at every step:
    the flag stays on the device and is read every ``every`` steps and at the end."""

    def __init__(self, every: int = 25):
        self.every, self.flag, self.first_step = every, None, 0

    def __call__(self, loss: torch.Tensor, step: int, last: bool = False) -> None:
        bad = ~torch.isfinite(loss.detach())
        self.flag = bad if self.flag is None else self.flag | bad
        if (step + 1) % self.every == 0 or last:
            self.finish(step)

    def finish(self, step: int) -> None:
        """Read the flag now (the loop stopped after ``step``, e.g. early)."""
        if self.flag is not None and self.first_step <= step:
            if self.flag.item():
                raise Diverged(f"loss became non-finite (nan or inf) between steps {self.first_step} and {step}")
            self.first_step = step + 1


class Clock:
    """Accumulates the training time, the number of examples a strategy trained on, and time
    spent inside training that is not training (``compile_seconds``), kept apart."""

    def __init__(self):
        self.train_seconds = 0.0
        self.images = 0
        self.excluded: dict[str, float] = {}
        self._started: float | None = None

    def seconds(self) -> float:
        """Training seconds so far, including the running ``training()`` block (no device sync)."""
        running = time.perf_counter() - self._started if self._started is not None else 0.0
        return self.train_seconds + running

    def exclude(self, since: float, what: str, device: torch.device) -> None:
        """Take the time since ``since`` (a ``perf_counter`` reading; e.g. a step that compiled)
        out of the training time, and keep it as ``what``."""
        _sync(device)
        seconds = time.perf_counter() - since
        self.excluded[what] = self.excluded.get(what, 0.0) + seconds
        self.train_seconds -= seconds

    @contextlib.contextmanager
    def training(self, device: torch.device):
        _sync(device)
        self._started = start = time.perf_counter()
        try:
            yield
        finally:
            _sync(device)
            self._started = None
            self.train_seconds += time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def peak_memory(device: torch.device, out: dict):
    """Sets ``out["peak_memory_mb"]``: CUDA peak allocated, or on CPU the peak growth of this
    process's resident memory above its level at the start (sampled every 5 ms)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        try:
            yield
        finally:
            out["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        return
    process = psutil.Process(os.getpid())
    base = process.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.005):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        stop.set()
        sampler.join()
        peak[0] = max(peak[0], process.memory_info().rss)
        out["peak_memory_mb"] = (peak[0] - base) / 2**20
