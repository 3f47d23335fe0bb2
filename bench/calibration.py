"""The statistics against a known truth: coverage of the 95% interval, false "told apart" verdicts
in rows of four equal strategies, and power, over seeds × test examples × seed-to-seed spread.

Every row is simulated with tlbench.analysis.simulate (the generator the tests and the known_truth plugin
use): true accuracy 80%, per-example agreement 0.5, a seed effect of SD 0, 2, 4 or 6 points.

    python bench/calibration.py                  # the full grid, ~300 rows per setting (minutes)
    python bench/calibration.py --reps 100       # quicker, coarser

Prints a markdown table: coverage (share of rows whose 95% interval for a strategy's accuracy
covers its truth), false alarms (share of rows of four equal strategies where any pair is told
apart), and power (share of rows where a strategy 5 or 10 points better is told apart from one of
three equal rivals), each ± its simulation standard error.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from tlbench.analysis import stats as S
from tlbench.analysis.simulate import correct_matrix

NAMES = "abcd"


def scores(accuracies, seeds, n, seed_sd, rng):
    y = correct_matrix(accuracies, seeds, n, seed_sd, 0.5, rng).astype(float)
    return {NAMES[k]: S.Scores(tuple(range(seeds)), np.arange(n), y[k]) for k in range(len(y))}


def setting(seeds: int, n: int, seed_sd: float, reps: int, rng) -> dict[str, float]:
    covered = alarms = power5 = power10 = 0
    for _ in range(reps):
        equal = scores([0.8] * 4, seeds, n, seed_sd, rng)
        floor = S.row_floor(equal.values())
        covered += 0.8 in S.mean_interval(equal["a"], floor=floor)
        alarms += any(c.told_apart for _, _, c in S.compare_row(equal, min_seeds=2).pairs)
        for gap in (0.05, 0.10):
            row = scores([0.8 + gap, 0.8, 0.8, 0.8], seeds, n, seed_sd, rng)
            found = S.compare_row(row, min_seeds=2).pair("a", "b").told_apart
            power5 += found and gap == 0.05
            power10 += found and gap == 0.10
    return {"coverage": covered / reps, "false alarms": alarms / reps,
            "power 5 pt": power5 / reps, "power 10 pt": power10 / reps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 5])
    ap.add_argument("--examples", type=int, nargs="+", default=[120, 360])
    ap.add_argument("--seed-sd", type=float, nargs="+", default=[0, 2, 4, 6], help="points")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    start = time.time()
    cols = ["coverage", "false alarms", "power 5 pt", "power 10 pt"]
    print(f"| seeds | test examples | seed SD | {' | '.join(cols)} |")
    print("|---:|---:|---:|" + "---:|" * len(cols))
    for seeds in args.seeds:
        for n in args.examples:
            for sd in args.seed_sd:
                out = setting(seeds, n, sd / 100, args.reps, rng)
                cells = [f"{100 * v:.1f}% ± {100 * math.sqrt(v * (1 - v) / args.reps):.1f}"
                         for v in (out[c] for c in cols)]
                print(f"| {seeds} | {n} | {sd:g} | {' | '.join(cells)} |", flush=True)
    print(f"\n{args.reps} rows per setting; {time.time() - start:.0f} s. Verdicts with 2 seeds are "
          "counted here (min_seeds=2) to show why the report withholds them.")


if __name__ == "__main__":
    main()
