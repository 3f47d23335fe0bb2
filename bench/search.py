"""At the same total training steps, does TPE + successive halving reach a validation accuracy at
least as good as the grid? Measured side by side in one run.

One small CPU setting (digits at 8 px, the tiny CNN, ``finetune``), the same ``[train]`` (``steps =
81``) and seeds for every method, each into its own results directory:

* ``grid``: the strategy's declared grid (``lr`` in {3e-4, 1e-3, 3e-3}): 3 configurations x 81 steps;
* ``tpe + halving``: 9 TPE trials over ``finetune``'s declared space (lr and weight decay,
  log-uniform); all train 9 steps, the best 3 train 27, the best one 81: 81 + 81 + 81 = 243 steps,
  the grid's budget (Hyperband's most exploratory bracket);
* ``random + halving``: the same with random sampling;
* ``tpe + hyperband``: 9 trials over Hyperband's three brackets (a larger budget, stated);
* ``tpe + hyperband, 3 trials``: the most trials Hyperband's brackets fit in the grid's budget
  (2 trials at 9 steps, the best at 27 and 81; 1 trial at 27 and 81: 234 steps a seed).

For each: the selected variant's mean validation accuracy over seeds (what selection sees), its
test accuracy, and the optimizer steps spent in all (every rung of every trial and seed).

    python bench/search.py                # about 10 minutes on 2 busy cores
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

SUITE = """
[suite]
name = "{name}"
seeds = {seeds}

[[backbone]]
plugin = "tiny_cnn"
width = 8
input_size = 8

[[dataset]]
plugin = "digits"
image_size = 8

[[strategy]]
plugin = "finetune"

[train]
steps = 81
batch_size = 64
eval_batch_size = 1024
"""

METHODS = {
    "grid": "",
    "tpe + halving": '[search]\nmethod = "tpe"\ntrials = 9\npruner = "halving"\nstartup_trials = 3\n',
    "random + halving": '[search]\nmethod = "random"\ntrials = 9\npruner = "halving"\n',
    "tpe + hyperband": '[search]\nmethod = "tpe"\ntrials = 9\npruner = "hyperband"\nstartup_trials = 3\n',
    "tpe + hyperband, 3 trials": '[search]\nmethod = "tpe"\ntrials = 3\npruner = "hyperband"\nstartup_trials = 1\n',
}


def measure(directory: Path) -> dict:
    """Selected variant (best mean validation accuracy over seeds), its test accuracy, steps spent."""
    from tlbench.analysis.selection import select_variants
    from tlbench.run.store import Store
    store = Store(directory, create=False)
    try:
        chosen = select_variants(store.frame())
        spent = sum(r.steps or 0 for r in store.records(plan_only=False))
        cells = len(store.records(plan_only=False))
    finally:
        store.close()
    return {"variant": chosen["variant"].iloc[0], "val": chosen["val_acc"].mean(), "test": chosen["test_acc"].mean(),
            "steps": spent, "cells": cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="[0, 1]", help="TOML list of seeds (default [0, 1])")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tlbench-search-bench-"))
    # one torch thread: a tiny CNN gains nothing from more, and on shared cores they contend
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TLBENCH_MLFLOW": "0"}
    rows = []
    for i, (method, table) in enumerate(METHODS.items()):
        path = work / f"m{i}.toml"
        path.write_text(SUITE.format(name=f"m{i}", seeds=args.seeds) + table)
        start = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "tlbench"), "run", str(path), "--no-report", "--output",
                        str(work / "results")], check=True, stdout=subprocess.DEVNULL, env=env)
        rows.append({"method": method, "seconds": time.perf_counter() - start, **measure(work / "results" / f"m{i}")})
    print(f"{date.today()}, {platform.machine()} {os.cpu_count()} cores, seeds {args.seeds}\n")
    print("| method | optimizer steps (all cells) | cells | selected variant | val acc | test acc | wall s |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['steps']:,} | {r['cells']} | `{r['variant']}` | {r['val']:.3f} | {r['test']:.3f} "
              f"| {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
