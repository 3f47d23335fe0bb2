"""Time text cells by hand (before the worker runs whole text suites): MiniLM on a real task, every
strategy of suites/text.toml, at the suite's [train] settings. Usage:
    THREADS=2 STRATEGIES=finetune,scratch python bench/text_cell_timing.py sms_spam 150 [fractions...]
"""
import sys
import time

import torch

from tlbench import data as data_mod
from tlbench.builtins.backbones import transformers as tf
from tlbench.builtins.datasets import text_sets
from tlbench.builtins.strategies import finetune, linear_probe, lora, partial_finetune, scratch
from tlbench.context import CellContext, Features, count_params
from tlbench import engine
from tlbench.records import Split
from tlbench.suite import TrainOptions
import contextlib

name, cap = sys.argv[1], int(sys.argv[2])
fractions = [float(f) for f in sys.argv[3:]] or [0.1, 1.0]
torch.set_num_threads(int(__import__("os").environ.get("THREADS", "2")))
plugin = {p.name: p for p in text_sets.tlbench_datasets()}[name]
t = time.perf_counter()
loaded = plugin.load(text_sets.TextSetOptions(max_per_class=cap))
options = tf.TransformersOptions(max_length=64)
enc = tf.encoder(options)
splits = data_mod.prepare(loaded)
encoded = enc({k: s.inputs for k, s in splits.items()})
splits = {k: Split(encoded[k], s.labels) for k, s in splits.items()}
print(f"{name}: {', '.join(f'{k} {len(s)}' for k, s in splits.items())}; load+tokenise {time.perf_counter() - t:.1f}s; "
      f"mean tokens {float(encoded['train']['attention_mask'].sum(1).float().mean()):.1f}", flush=True)
train = TrainOptions(epochs=3, min_steps=24, batch_size=16, eval_batch_size=128)
cache = {}


def features_cache(make):
    if "f" not in cache:
        b = make()
        s = time.perf_counter()
        f = {k: engine.predict(b, v, 128, contextlib.nullcontext, call=b.extract) for k, v in splits.items()}
        cache["f"] = Features(f, count_params(b)[1], (time.perf_counter() - s) / sum(len(v) for v in splits.values()))
        print(f"  features of all splits: {time.perf_counter() - s:.1f}s", flush=True)
    return cache["f"]


runs = {"linear_probe": (linear_probe.run, linear_probe.LinearProbeOptions()),
        "finetune": (finetune.run, finetune.FinetuneOptions(lr=1e-4)),
        "partial_finetune": (partial_finetune.run, partial_finetune.PartialFinetuneOptions(k=2, lr=3e-4)),
        "lora": (lora.run, lora.LoraOptions(lr=1e-3)),
        "scratch": (scratch.run, finetune.FinetuneOptions(lr=3e-4))}
only = __import__("os").environ.get("STRATEGIES")
runs = {k: v for k, v in runs.items() if not only or k in only.split(",")}
total = 0.0
for fraction in fractions:
    for strategy, (run, opts) in runs.items():
        index = data_mod.label_subset(splits["train"].labels, fraction, 0)
        torch.manual_seed(0)
        ctx = CellContext(data={**splits, "train": splits["train"].subset(index)}, train_index=index,
                          num_classes=len(loaded.classes), device=torch.device("cpu"), train=train, seed=0,
                          build=lambda p: tf.build(options, p), features_cache=features_cache,
                          label_fraction=fraction)
        s = time.perf_counter()
        out = run(ctx, opts)
        wall = time.perf_counter() - s
        total += wall
        acc = (out.logits["test"].argmax(1) == splits["test"].labels).float().mean().item()
        print(f"  {fraction:>4} {strategy:<17} {wall:5.1f}s (train {ctx.clock.train_seconds:5.1f}s, "
              f"{ctx.steps()} steps, {len(index)} texts) test acc {acc:.3f}", flush=True)
print(f"total {total:.0f}s for {len(fractions) * len(runs)} cells")
