"""Are the report's verdicts and intervals calibrated? A suite with a known truth, end to end.

Runs a suite of ``simulated`` strategies on the ``known_truth`` dataset (tlbench/analysis/simulate.py,
tlbench/builtins/known_truth.py) through ``tlbench run`` into a temporary results folder, reads
the store back with the report's own loaders (``tlbench.report.data``, ``select_variants``,
``group_scores``, ``summarize_seeds``: the accuracy table's intervals) and statistics
(``tlbench.analysis.stats.compare_row``: the comparison table's tests), and prints:

- the share of rows with any false "told apart" (any pair of the row told apart although their
  true accuracies are equal), with its 95% Clopper–Pearson interval: Holm keeps it at most 5% per
  row if the tests are calibrated;
- per strategy, how often its 95% interval covers its true accuracy (should be about 95%);
- for pairs that differ in truth (flags ``--accuracies``), how often they are told apart (power);
- the wall time of ``tlbench run`` and cells per second; unless ``--no-overhead``, a one-row run
  of the same suite before and after it (the faster counts), so that the marginal seconds per cell
  (what the runner and the store cost a cell that trains nothing) are
  ``(T_full − T_one_row) / (cells_full − cells_one_row)``.

    python bench/known_truth.py                          # 4 equal strategies at 0.8, 3 seeds, 40 rows
    python bench/known_truth.py --rows 200 --seeds 2 --accuracies 0.85,0.85,0.80,0.65
    python bench/known_truth.py --suite suites/known-truth.toml --no-overhead

The truth of each cell is read from its stored configuration (the strategy's ``accuracy`` and
``seed_sd``, through :func:`tlbench.analysis.simulate.true_accuracy`), so ``--suite`` takes any suite of
``simulated`` strategies.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = "tlbench.builtins.known_truth"
TLBENCH = [sys.executable, "-c", "from tlbench.cli import main; main()"]


def plugin_args() -> list[str]:
    """``--plugin MODULE`` unless the installed entry points already register it (then naming it
    again is an error)."""
    installed = {ep.value for ep in entry_points(group="tlbench")}
    return [] if MODULE in installed else ["--plugin", MODULE]


def suite_text(name: str, accuracies: list[float], seed_sd: float, agreement: float, seeds: int,
               examples: int, val_examples: int, classes: int, rows: list[int]) -> str:
    lines = ["[suite]", f'name = "{name}"', f"seeds = {list(range(seeds))}", "label_fractions = [1.0]",
             'executor = "inprocess"', "measure_deployment = false", "", "[executor]", 'device = "cpu"', "",
             "[[backbone]]", 'plugin = "tiny_cnn"', "width = 4", "input_size = 8", "",
             "[[dataset]]", 'plugin = "known_truth"', f"examples = {examples}", f"val_examples = {val_examples}",
             f"classes = {classes}", f"row = {rows}", ""]
    for i, p in enumerate(accuracies):
        label = chr(ord("a") + i) if i < 26 else f"s{i}"
        lines += ["[[strategy]]", 'plugin = "simulated"', f'label = "{label}"', f'name = "{label}"',
                  f"accuracy = {p}", f"seed_sd = {seed_sd}", f"agreement = {agreement}", ""]
    lines += ["[train]", "epochs = 1", "batch_size = 64", ""]
    return "\n".join(lines)


def one_row(text: str) -> str:
    """The same suite with only the first value of the first ``row = [...]`` (a one-value list stays
    a sweep, so the labels are the same)."""
    match = re.search(r"^(\s*row\s*=\s*)\[([^\]]*)\]", text, flags=re.M)
    if match is None:
        return text
    first = next(v for v in match.group(2).replace("\n", " ").split(",") if v.strip()).split("#")[0].strip()
    return text[:match.start()] + f"{match.group(1)}[{first}]" + text[match.end():]


def run(suite: Path, output: Path, log: Path, report: bool, mlflow: bool = False) -> tuple[float, int]:
    """``tlbench run`` in a subprocess; (seconds, exit status). The MLflow tracker is off unless
    ``mlflow`` (where MLflow is installed it costs about 40 ms a cell, more than such a cell)."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "TLBENCH_MLFLOW": "1" if mlflow else "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = TLBENCH + ["run", str(suite), "--output", str(output), *plugin_args()] + ([] if report else ["--no-report"])
    start = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=output).returncode
    return time.perf_counter() - start, rc


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    from scipy.stats import beta
    a = (1 - confidence) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def share(k: int, n: int) -> str:
    if n == 0:
        return "n/a (none)"
    lo, hi = clopper_pearson(k, n)
    return f"{k}/{n} = {100 * k / n:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def evaluate(results: Path) -> dict:
    """Read the store as the report does and count verdicts and coverage against the truth."""
    sys.path.insert(0, str(ROOT))
    from tlbench.analysis import simulate, stats
    from tlbench.report import data as D
    from tlbench.analysis.selection import group_scores, summarize_seeds
    from tlbench.run.store import Store

    start = time.perf_counter()
    store = Store(results, create=False)
    try:
        frame, evidence, records = store.frame(), store.evidence(), store.records()
    finally:
        store.close()
    df = D.prepare(frame)
    truth = {}
    for r in records:
        s = r.config["strategy"]
        if s.get("plugin", "").split(":")[-1] != "simulated":
            raise SystemExit(f"{r.strategy}: not a simulated strategy; the bench knows no truth for it")
        truth[(r.dataset, r.strategy)] = simulate.true_accuracy(float(s["accuracy"]), float(s["seed_sd"]))
    selected = D.select(df)
    table = {(r.dataset, r.strategy): r for r in summarize_seeds(selected, "test_acc", evidence).itertuples()}
    out = {"rows": 0, "false_rows": 0, "equal_pairs": 0, "false_pairs": 0, "unequal_pairs": 0, "told_unequal": 0,
           "covered": {}, "intervals": {}, "cells": int((df["status"] == "ok").sum()),
           "not_ok": int((df["status"] != "ok").sum()), "examples_resampled": set()}
    for (dataset, _backbone, _frac), g in selected.groupby(["dataset", "backbone", "label_fraction"], sort=True):
        scores = {s: group_scores(gs, "test_acc", evidence) for s, gs in g.groupby("strategy", sort=True)}
        out["examples_resampled"].add(all(sc.per_example for sc in scores.values()))
        for s in scores:
            iv = table[(dataset, s)]
            t = truth[(dataset, s)]
            out["covered"].setdefault(s, []).append(iv.ci_low <= t <= iv.ci_high)
            out["intervals"].setdefault(s, []).append(iv.ci_high - iv.ci_low)
        if len(scores) < 2:
            continue
        result = stats.compare_row(scores)
        out["rows"] += 1
        false = False
        for x, y, c in result.pairs:
            if abs(truth[(dataset, x)] - truth[(dataset, y)]) < 1e-12:
                out["equal_pairs"] += 1
                out["false_pairs"] += bool(c.told_apart)
                false |= bool(c.told_apart)
            else:
                out["unequal_pairs"] += 1
                out["told_unequal"] += bool(c.told_apart)
        out["false_rows"] += false
    out["truth"] = {s: sorted({v for (d, s2), v in truth.items() if s2 == s}) for s in out["covered"]}
    out["seconds"] = time.perf_counter() - start
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", type=Path, help="run this suite file as it is (default: one made from the flags)")
    ap.add_argument("--accuracies", default="0.8,0.8,0.8,0.8", help="true accuracy of each strategy (labels a, b, ...)")
    ap.add_argument("--seed-sd", type=float, default=0.03, help="seed-to-seed SD of accuracy")
    ap.add_argument("--agreement", type=float, default=0.5, help="per-example agreement, in [0, 1)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--examples", type=int, default=360, help="test examples per row")
    ap.add_argument("--val-examples", type=int, default=120)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--rows", type=int, default=40, help="replicate rows (independent truths)")
    ap.add_argument("--first-row", type=int, default=0, help="rows first-row .. first-row + rows - 1 (new replicates)")
    ap.add_argument("--keep", type=Path, help="keep the results here (default: a temporary folder, removed)")
    ap.add_argument("--report", action="store_true", help="let tlbench run write its report (slower)")
    ap.add_argument("--mlflow", action="store_true", help="leave the MLflow tracker on (where installed)")
    ap.add_argument("--no-overhead", dest="overhead", action="store_false",
                    help="skip the one-row run that measures the fixed cost of a run")
    args = ap.parse_args(argv)

    name = "known-truth-bench"
    if args.suite:
        text = args.suite.read_text()
        name = tomllib.loads(text)["suite"]["name"]
    else:
        accuracies = [float(a) for a in args.accuracies.split(",")]
        text = suite_text(name, accuracies, args.seed_sd, args.agreement, args.seeds, args.examples,
                          args.val_examples, args.classes, list(range(args.first_row, args.first_row + args.rows)))
    work = Path(tempfile.mkdtemp(prefix="tlbench-known-truth-"))
    try:
        (work / "suite.toml").write_text(text)
        one_seconds = []

        def run_one_row() -> None:
            folder = work / "one"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            (folder / "suite.toml").write_text(one_row(text))
            secs, code = run(folder / "suite.toml", folder, work / "one.log", args.report, args.mlflow)
            if code != 0:
                print((work / "one.log").read_text()[-3000:])
                raise SystemExit(f"the one-row run failed (exit {code})")
            one_seconds.append(secs)

        if args.overhead:  # before (it warms the caches too) and after the full run; the faster counts
            run_one_row()
        seconds, rc = run(work / "suite.toml", work, work / "run.log", args.report, args.mlflow)
        if rc != 0:
            print((work / "run.log").read_text()[-3000:])
            raise SystemExit(f"tlbench run failed (exit {rc}); log above")
        if args.overhead:
            run_one_row()
        res = evaluate(work / name)
        one = evaluate(work / "one" / name) if args.overhead else None

        print(f"suite {name}: {res['cells']} ok cells ({res['not_ok']} not ok), {res['rows']} rows"
              + ("" if res["examples_resampled"] == {True} else "  (some rows WITHOUT per-example evidence)"))
        print(f"tlbench run: {seconds:.1f} s wall, {res['cells'] / seconds:.1f} cells/s overall")
        if one:
            fixed = min(one_seconds)
            per_cell = (seconds - fixed) / max(1, res["cells"] - one["cells"])
            print(f"  one-row run of the same suite: {' and '.join(f'{t:.1f}' for t in one_seconds)} s for "
                  f"{one['cells']} cells; marginal cost of a cell: {1000 * per_cell:.1f} ms ({1 / per_cell:.0f} "
                  f"cells/s); fixed cost of a run: {fixed - one['cells'] * per_cell:.1f} s")
        print(f"read back + statistics: {res['seconds']:.1f} s")
        print(f"rows with any false 'told apart': {share(res['false_rows'], res['rows'])}  (Holm: at most 5% if calibrated)")
        print(f"  equal pairs told apart: {share(res['false_pairs'], res['equal_pairs'])}")
        if res["unequal_pairs"]:
            print(f"  pairs unequal in truth told apart (power): {share(res['told_unequal'], res['unequal_pairs'])}")
        print("coverage of the true accuracy by each strategy's 95% interval:")
        for s, cov in sorted(res["covered"].items()):
            widths = res["intervals"][s]
            truth = ", ".join(f"{t:.4f}" for t in res["truth"][s])
            print(f"  {s} (truth {truth}): {share(sum(cov), len(cov))}; mean width {100 * sum(widths) / len(widths):.1f} points")
        allcov = [c for cov in res["covered"].values() for c in cov]
        print(f"  all: {share(sum(allcov), len(allcov))}")
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
            print(f"results kept in {args.keep}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
