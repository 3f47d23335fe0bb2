"""Contiguous (NCHW) against channels-last (NHWC) on the CPU: the layout `tlbench.train.engine.place`
and `ImageBackbone.prepare` give every image model and batch.

For each of the default suite's two backbones (torchvision MobileNetV2, timm EfficientNet-Lite0,
random weights: the layout does not depend on them), a training step (forward, backward, AdamW)
at the default suite's settings (batch 32, 48 px, 10 classes) and an inference pass (batch 256),
in both layouts, alternating in one process, one torch thread. Reports the median over the steps
of the process CPU time (user + system: robust to other load on a shared machine) and of the wall
time. ``python bench/memory_format.py [--steps 8] [--rounds 3]``
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date

import timm
import torch
import torchvision

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
MODELS = {"mobilenetv2": lambda: torchvision.models.mobilenet_v2(num_classes=10),
          "tf_efficientnet_lite0": lambda: timm.create_model("tf_efficientnet_lite0", num_classes=10)}


def timings(make, layout, train: bool, batch: int, size: int, steps: int) -> tuple[float, float]:
    """(median CPU seconds, median wall seconds) per step, the first (warm-up) step dropped."""
    torch.manual_seed(0)
    model = make().to(memory_format=layout).train(train)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (batch,))
    cpu, wall = [], []
    for _ in range(steps + 1):
        c, w = time.process_time(), time.perf_counter()
        if train:
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                model(x)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu[1:]), statistics.median(wall[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two layouts")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{date.today()} · {platform.processor() or platform.machine()} · torch {torch.__version__} · "
          f"1 thread · load average {os.getloadavg()[0]:.1f}")
    print("| model | pass | contiguous CPU ms | channels_last CPU ms | ratio (CPU) | contiguous wall ms "
          "| channels_last wall ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, make in MODELS.items():
        for train, batch in ((True, 32), (False, 256)):
            results = {layout: [] for layout in LAYOUTS}
            for _ in range(args.rounds):
                for layout, fmt in LAYOUTS.items():
                    results[layout].append(timings(make, fmt, train, batch, 48, args.steps))
            cpu = {k: statistics.median(c for c, _ in v) * 1e3 for k, v in results.items()}
            wall = {k: statistics.median(w for _, w in v) * 1e3 for k, v in results.items()}
            print(f"| {name} | {'train, batch 32' if train else 'inference, batch 256'} | "
                  f"{cpu['contiguous']:.0f} | {cpu['channels_last']:.0f} | "
                  f"{cpu['channels_last'] / cpu['contiguous']:.2f} | {wall['contiguous']:.0f} | "
                  f"{wall['channels_last']:.0f} |")


if __name__ == "__main__":
    main()
