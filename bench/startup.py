"""How long tlbench takes to answer before any work: ``tlbench --help``, ``--version``, a usage
error, and ``tlbench list`` (which imports every plugin, torch among them), each timed from outside
by ``farm-bench`` (a whole process, start-up included), and whether torch was imported at all.

    python bench/startup.py            # prints one line per command: median wall / cpu seconds

Targets (issue 17): ``tlbench --help`` under 0.5 s, ``tlbench list`` under 3 s on a 2-core machine.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

COMMANDS = {
    "tlbench --help": ["--help"],
    "tlbench --version": ["--version"],
    "tlbench run (usage error)": ["run"],
    "tlbench list": ["list"],
}


def imports_torch(args: list[str]) -> bool:
    """Whether the command imports torch (``python -X importtime``)."""
    code = "import sys; from tlbench.cli import main; sys.argv = ['tlbench', *sys.argv[1:]]; main()"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], capture_output=True, text=True)
    return bool(re.search(r"\|\s+torch$", done.stderr, re.M))


def median(report: str, what: str) -> str:
    """The median of the ``what`` row of farm-bench's report (its min / median / max columns)."""
    for line in report.splitlines():
        if line.strip().startswith(f"A {what} s"):
            numbers = re.findall(r"[\d.]+", line)
            return numbers[1] if len(numbers) >= 3 else "?"
    return "?"


def main() -> None:
    tlbench = shutil.which("tlbench")
    for name, args in COMMANDS.items():
        done = subprocess.run(["farm-bench", "-n", "3", "--timeout", "300", "--", tlbench, *args],
                              capture_output=True, text=True)
        report = done.stdout + done.stderr
        print(f"{name:28s} wall {median(report, 'wall')} s  cpu {median(report, 'cpu')} s  "
              f"torch imported: {imports_torch(args)}")
        if "-v" in sys.argv:
            print(report)


if __name__ == "__main__":
    main()
