"""Wall time of one suite with each executor, side by side in one run, and whether they agree.

Runs ``tlbench run SUITE`` in a fresh process per executor (start-up, Ray's included, is part of
the wall time): ``inprocess`` (one process, torch's default threads), ``local`` (N worker
processes x 1 thread) and ``ray`` (a new local Ray instance, N actors x 1 CPU), each into its own
results directory. Prints the wall times, the ratios to ``inprocess`` and whether the three sets of
records agree: the same cells with the same statuses, and the metrics of the deterministic cells
equal (local and ray run each cell on one thread, so they must agree exactly; inprocess uses every
core, so its float sums may differ in the last bits and, after training, in a prediction or two).

    python bench/executors.py                 # the built-in small suite below
    python bench/executors.py --suite suites/vision.toml --workers 2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

#: vision.toml's backbone and strategies at a smaller budget: 12 cells, a couple of minutes on 2 cores
SMALL_SUITE = """
[suite]
name = "executors-bench"
seeds = [0, 1]
label_fractions = [0.25]

[[backbone]]
plugin = "timm"
model = "tf_efficientnet_lite0"
weights = "imagenet"
input_size = 32

[[dataset]]
plugin = "digits"
image_size = 32

[[strategy]]
plugin = "linear_probe"
C = [0.1, 1.0]

[[strategy]]
plugin = "finetune"
lr = 1e-3

[[strategy]]
plugin = "lora"
lr = 3e-3

[[strategy]]
plugin = "scratch"
lr = 3e-3

[train]
epochs = 1
min_steps = 15
batch_size = 64
"""


def run(suite: Path, out: Path, executor: str, options: list[str], env: dict) -> float:
    tlbench = str(Path(sys.executable).parent / "tlbench")
    command = [tlbench, "run", str(suite), "--no-report", "--output", str(out), "--executor", executor]
    for option in options:
        command += ["--executor-option", option]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"{executor} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall


def records(out: Path) -> dict[str, dict]:
    [db_path] = out.glob("*/tlbench.sqlite")
    db = sqlite3.connect(db_path)
    rows = [json.loads(r[0]) for r in db.execute("SELECT record FROM records")]
    db.close()
    return {r["cell_id"]: r for r in rows}


def compare(a: dict[str, dict], b: dict[str, dict]) -> tuple[bool, int, float]:
    """(same cells and statuses, cells whose metrics differ, largest metric difference)."""
    same = set(a) == set(b) and all(a[c]["status"] == b[c]["status"] for c in a)
    differ, largest = 0, 0.0
    for cell in set(a) & set(b):
        ma, mb = a[cell]["metrics"], b[cell]["metrics"]
        gaps = [abs(ma[k] - mb[k]) for k in ma if k in mb and isinstance(ma[k], (int, float))]
        gap = max(gaps, default=0.0)
        differ += gap > 1e-9
        largest = max(largest, gap)
    return same, differ, largest


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, help="a suite file (default: the small suite in this script)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tlbench-bench-"))
    suite = args.suite.resolve() if args.suite else work / "suite.toml"
    if not args.suite:
        suite.write_text(SMALL_SUITE)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.setdefault("TLBENCH_MLFLOW", "0")  # time the executors, not a tracker
    plans = [("inprocess", []),
             ("local", [f"workers={args.workers}", "threads=1"]),
             ("ray", [f"workers={args.workers}", "threads=1", "num_cpus_per_cell=1"])]
    if args.skip_ray:
        plans = plans[:2]
    import torch
    print(f"# {date.today()}; {os.cpu_count()} cores; torch {torch.__version__}; python {sys.version.split()[0]}; "
          f"suite {args.suite or 'built-in small suite (bench/executors.py)'}")
    walls, results = {}, {}
    for name, options in plans:
        walls[name] = run(suite, work / name, name, options, env)
        results[name] = records(work / name)
        print(f"{name:10s} {walls[name]:7.1f} s  {len(results[name])} records", flush=True)
    print()
    print("| executor | wall s | vs inprocess | same cells & statuses | cells with other metrics | max metric diff |")
    print("|---|---:|---:|---|---:|---:|")
    base = results["inprocess"]
    for name, _ in plans:
        same, differ, largest = compare(base, results[name])
        print(f"| {name} | {walls[name]:.1f} | {walls['inprocess'] / walls[name]:.2f}x | {same} | {differ} "
              f"| {largest:.2g} |")
    if "ray" in results:
        same, differ, largest = compare(results["local"], results["ray"])
        print(f"\nlocal vs ray (both 1 thread per cell): same cells & statuses {same}, {differ} cells with other "
              f"metrics, max diff {largest:.2g}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
