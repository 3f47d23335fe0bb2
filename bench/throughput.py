"""Training throughput of tlbench's shared loop against a plain timm/PyTorch loop, side by side.

The plain loop is the reference of ``shared/anchors/plain_timm_train.py`` (synthetic float batches
already on the device, bf16 autocast + channels_last on CUDA, AdamW). tlbench's loop is the one every
fine-tuning strategy uses (``CellContext.fit``): uint8 images resident on the device, converted,
resized and normalised per batch, with shuffling, LR schedule and a finite-loss check.
Also: cells per second of linear-probe cells with the shared feature cache vs re-extracting.

    python bench/throughput.py [--model tf_efficientnet_lite0] [--size 224] [--batch 256] [--steps 30]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from tlbench import engine
from tlbench.backbone import Classifier
from tlbench.builtins.backbones.timm import TimmOptions, build
from tlbench.context import CellContext, count_params
from tlbench.records import Split
from tlbench.suite import TrainOptions


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(model_name, size, batch, steps, device) -> float:
    """Images/s of the anchor's training step on one fixed synthetic batch."""
    backbone = build(TimmOptions(model=model_name, weights="none", input_size=size), False)
    model = Classifier(backbone, 10).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, size, size, device=device)
    x = x.to(memory_format=torch.channels_last) if cuda else x
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        with engine.autocast(device, "auto"):
            loss = torch.nn.functional.cross_entropy(model.head(model.backbone(x)), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    for _ in range(5):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return batch * steps / (time.perf_counter() - start)


def context(model_name, size, batch, steps, device, n_images=None) -> CellContext:
    n = n_images or batch * steps
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
    split = Split(images, torch.randint(0, 10, (n,), generator=gen)).to(device)
    options = TimmOptions(model=model_name, weights="none", input_size=size)
    train = TrainOptions(epochs=1, batch_size=batch, eval_batch_size=batch)
    return CellContext(data={"train": split, "val": split, "test": split}, train_index=torch.arange(n),
                       num_classes=10, device=device, train=train, seed=0,
                       build=lambda pretrained: build(options, pretrained), features_cache=None)


def tlbench_loop(model_name, size, batch, steps, device) -> float:
    """Images/s of ``CellContext.fit`` (after a warm-up fit on the same model)."""
    ctx = context(model_name, size, batch, steps, device)
    model = ctx.classifier(pretrained=False)
    warm = context(model_name, size, batch, 5, device)
    warm.fit(model, lr=1e-4)
    ctx.fit(model, lr=1e-4)
    return ctx.clock.images / ctx.clock.train_seconds


def probe_cells(model_name, size, batch, device, cells=6) -> tuple[float, float]:
    """Seconds for ``cells`` linear-probe feature passes: one shared extraction vs one per cell."""
    ctx = context(model_name, size, batch, 4, device)
    backbone = ctx.backbone(pretrained=False)
    precision = lambda: engine.autocast(device, "auto")  # noqa: E731

    def extract():
        return {k: engine.predict(backbone, s, batch, precision, call=backbone.extract) for k, s in ctx.data.items()}
    extract()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(cells):
        extract()
    sync(device)
    per_cell = time.perf_counter() - start
    start = time.perf_counter()
    extract()
    sync(device)
    return per_cell, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tf_efficientnet_lite0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    device = engine.resolve_device("auto")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    plain = plain_loop(args.model, args.size, args.batch, args.steps, device)
    ours = tlbench_loop(args.model, args.size, args.batch, args.steps, device)
    per_cell, shared = probe_cells(args.model, args.size, args.batch, device)
    result = {"device": name, "torch": torch.__version__, **vars(args),
              "plain_img_per_s": round(plain, 1), "tlbench_img_per_s": round(ours, 1),
              "tlbench_vs_plain": round(ours / plain, 3),
              "probe_6_cells_reextract_s": round(per_cell, 3), "probe_6_cells_shared_s": round(shared, 3),
              "probe_speedup": round(per_cell / shared, 2),
              "params": count_params(build(TimmOptions(model=args.model, weights="none"), False))[1]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
