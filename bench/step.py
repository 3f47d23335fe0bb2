"""tlbench's training step against the plain timm loop at equal settings, eager and compiled.

Plain: the anchor loop (one fixed synthetic float batch on the device, AdamW; on CUDA bf16 autocast
and channels_last), ``torch.compile(model)`` for the compiled column. tlbench: ``CellContext.fit``,
the loop every fine-tuning strategy runs (uint8 images resident on the device, shuffled gather,
convert and normalise per batch, LR schedule, finite-loss check, loss curve), with ``[train]
compile`` off and on (the step module compiled once; its first step, which compiles, is timed apart).
Both at the same model, image size, batch size, precision and optimiser, one after the other in one
process. MFU: training FLOPs (3x the forward FLOPs counted by torch's FlopCounterMode) per second over
a matmul ceiling measured here (bf16 on CUDA, fp32 on CPU).

    python bench/step.py                                   # CPU: resnet10t at 32 px, batch 64
    python bench/step.py --device cuda --size 224 --batch 256 \\
        --models tf_efficientnet_lite0 resnet50 vit_small_patch16_224     # the GPU table
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date

import torch

from tlbench.train import engine
from tlbench.contract.backbone import Classifier
from tlbench.builtins.backbones.timm import TimmOptions, build
from tlbench.train.context import CellContext
from tlbench.contract.values import Split
from tlbench.contract.cells import TrainOptions


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_ceiling(device, n: int) -> float:
    """FLOP/s of a square matmul in the loop's compute dtype (bf16 on CUDA, fp32 on CPU)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    sync(device)
    reps, start = 0, time.perf_counter()
    while reps < 5 or time.perf_counter() - start < 1.0:
        a @ b
        reps += 1
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - start)


def train_flops_per_image(model_name: str, size: int, device) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    model = Classifier(build(TimmOptions(model=model_name, weights="none", input_size=size), False), 10).to(device)
    x = torch.randn(2, 3, size, size, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.head(model.backbone(x))
    return 3 * counter.get_total_flops() / 2  # forward + backward ~ 3x forward


def plain_loop(model_name, size, batch, steps, device, compiled: bool) -> tuple[float, float]:
    """(images/s, compile seconds) of the anchor step on one fixed synthetic batch."""
    backbone = build(TimmOptions(model=model_name, weights="none", input_size=size), False)
    model = Classifier(backbone, 10).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, size, size, device=device)
    x = x.to(memory_format=torch.channels_last) if cuda else x
    y = torch.randint(0, 10, (batch,), device=device)
    forward = torch.compile(lambda inputs: model.head(model.backbone(inputs))) if compiled else \
        (lambda inputs: model.head(model.backbone(inputs)))

    def step():
        with engine.autocast(device, "auto"):
            loss = torch.nn.functional.cross_entropy(forward(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    start = time.perf_counter()
    step()  # compiles, if compiled
    sync(device)
    compile_seconds = time.perf_counter() - start if compiled else 0.0
    for _ in range(3):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return batch * steps / (time.perf_counter() - start), compile_seconds


def tlbench_loop(model_name, size, batch, steps, device, compiled: bool) -> tuple[float, float]:
    """(images/s, compile seconds) of ``CellContext.fit``, after a short warm-up fit."""
    def context(n_steps):
        n = batch * n_steps
        gen = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
        split = Split(images, torch.randint(0, 10, (n,), generator=gen)).to(device)
        options = TimmOptions(model=model_name, weights="none", input_size=size)
        train = TrainOptions(epochs=1, batch_size=batch, eval_batch_size=batch, compile=compiled)
        return CellContext(data={"train": split, "val": split, "test": split}, train_index=torch.arange(n),
                           num_classes=10, device=device, train=train, seed=0,
                           build=lambda pretrained: build(options, pretrained), features_cache=None)
    warm, ctx = context(4), context(steps + 1)  # + 1: a compiled fit times its first (compiling) step apart
    model = warm.classifier(pretrained=False)
    warm.fit(model, lr=1e-4)
    ctx.fit(model, lr=1e-4)
    return ctx.clock.images / ctx.clock.train_seconds, warm.clock.excluded.get("compile_seconds", 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=["resnet10t"])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true", help="eager columns only")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON lines here")
    args = parser.parse_args()
    device = engine.resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    ceiling = matmul_ceiling(device, 8192 if device.type == "cuda" else 1024)
    print(f"# {date.today()} {name}; torch {torch.__version__}; {args.size} px, batch {args.batch}, "
          f"{args.steps} timed steps; matmul ceiling {ceiling / 1e12:.2f} TFLOP/s "
          f"({'bf16' if device.type == 'cuda' else 'fp32'})")
    print("| model | compile | plain img/s | tlbench img/s | tlbench / plain | compile s (plain / tlbench) "
          "| MFU plain | MFU tlbench |")
    print("|---|---|---:|---:|---:|---|---:|---:|")
    rows = []
    for model_name in args.models:
        flops = train_flops_per_image(model_name, args.size, device)
        for compiled in ([False] if args.no_compile else [False, True]):
            plain, plain_c = plain_loop(model_name, args.size, args.batch, args.steps, device, compiled)
            ours, ours_c = tlbench_loop(model_name, args.size, args.batch, args.steps, device, compiled)
            row = {"date": str(date.today()), "device": name, "torch": torch.__version__, "model": model_name,
                   "size": args.size, "batch": args.batch, "compile": compiled, "plain_img_s": round(plain, 1),
                   "tlbench_img_s": round(ours, 1), "ratio": round(ours / plain, 3),
                   "compile_s_plain": round(plain_c, 1), "compile_s_tlbench": round(ours_c, 1),
                   "train_gflop_per_img": round(flops / 1e9, 3),
                   "mfu_plain": round(plain * flops / ceiling, 4), "mfu_tlbench": round(ours * flops / ceiling, 4)}
            rows.append(row)
            print(f"| {model_name} | {'on' if compiled else 'off'} | {plain:,.1f} | {ours:,.1f} | {ours / plain:.3f} "
                  f"| {plain_c:.1f} / {ours_c:.1f} | {row['mfu_plain']:.1%} | {row['mfu_tlbench']:.1%} |", flush=True)
    if args.json:
        with open(args.json, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
