"""How long tlbench takes to answer before any work: ``tlbench --help``, ``--version``, a usage
error, and ``tlbench list`` cold (an empty listing cache: every plugin is imported and every hook
called; since 0.4 none of them imports torch) and warm (the cached listing), each a whole process
timed from outside (start-up included), and whether it imported torch at all.

    python bench/startup.py [-n RUNS] [-v]   # one line per command: median wall and CPU seconds

Each command runs once untimed (a warm-up; for warm ``list`` it fills the cache), then RUNS times
(default 3). CPU is the child's user + system seconds (``getrusage(RUSAGE_CHILDREN)``); on a busy
machine wall time grows and CPU time barely does, so the load average is printed too.

Targets (issues 17 and 26): ``tlbench --help`` under 0.5 s, ``tlbench list`` under 3 s on a 2-core
machine, cold included.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

#: name -> (arguments, whether each run starts from an empty listing cache)
COMMANDS = {
    "tlbench --help": (["--help"], False),
    "tlbench --version": (["--version"], False),
    "tlbench run (usage error)": (["run"], False),
    "tlbench list (cold: cache miss)": (["list"], True),
    "tlbench list (warm: cache hit)": (["list"], False),
    "tlbench list strategies (warm)": (["list", "strategies"], False),
}


def timed(command: list[str], cache: str, cwd: str) -> tuple[float, float]:
    """One run's wall and CPU (user + system) seconds, with ``$TLBENCH_CACHE_DIR`` = ``cache``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env={**os.environ, "TLBENCH_CACHE_DIR": cache}, cwd=cwd,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def imports_torch(args: list[str], cache: str, cwd: str) -> bool:
    """Whether the command imports torch (``python -X importtime``)."""
    code = "import sys; from tlbench.cli import main; sys.argv = ['tlbench', *sys.argv[1:]]; main()"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, "TLBENCH_CACHE_DIR": cache}, cwd=cwd)
    return bool(re.search(r"\|\s+torch$", done.stderr, re.M))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3, help="timed runs per command (after one warm-up)")
    parser.add_argument("-v", action="store_true", help="print every run")
    options = parser.parse_args()
    tlbench = shutil.which("tlbench") or sys.exit("tlbench is not on PATH: install it (pip install -e .)")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min) before")
    with tempfile.TemporaryDirectory() as scratch:  # the caches, and the working directory
        for name, (args, cold) in COMMANDS.items():
            warm = tempfile.mkdtemp(dir=scratch)
            runs = [timed([tlbench, *args], tempfile.mkdtemp(dir=scratch) if cold else warm, scratch)
                    for _ in range(1 + options.n)][1:]
            torch = imports_torch(args, tempfile.mkdtemp(dir=scratch) if cold else warm, scratch)
            print(f"{name:32s} wall {statistics.median(w for w, _ in runs):6.2f} s  "
                  f"cpu {statistics.median(c for _, c in runs):6.2f} s  torch imported: {torch}")
            if options.v:
                print("    " + "  ".join(f"{w:.2f}/{c:.2f}" for w, c in runs))
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) after")


if __name__ == "__main__":
    main()
