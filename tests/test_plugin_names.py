"""A third-party distribution whose entry point is named like a built-in module (`bitfit`) loads
beside it: every entry point registers under `distribution:name`, so nothing breaks the tool."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import TINY

PLUGIN = '''
import tlbench
from tlbench.builtins.strategies import finetune


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("clash_finetune", "fine-tuning under another name",
                                   finetune.FinetuneOptions, finetune.run)]
'''


def installed_clash(root: Path) -> dict:
    """An installed distribution `clash` (a dist-info folder on the path) with entry point
    `bitfit = clash_bitfit`, as `pip install` would leave it; the environment that sees it."""
    (root / "clash_bitfit.py").write_text(PLUGIN)
    info = root / "clash-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: clash\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[tlbench]\nbitfit = clash_bitfit\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}


def tlbench(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tlbench", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_an_entry_point_named_like_a_builtin_loads_beside_it(tmp_path):
    env = installed_clash(tmp_path)
    listed = tlbench(env, tmp_path, "list", "strategies", "--refresh")
    assert listed.returncode == 0, listed.stderr
    assert "clash_finetune" in listed.stdout and "bitfit" in listed.stdout
    assert "already registered" not in listed.stderr
    plugins = tlbench(env, tmp_path, "plugins")
    assert plugins.returncode == 0 and "clash" in plugins.stdout
    suite = TINY.replace('plugin = "linear_probe"\nC = [0.1, 1.0]', 'plugin = "clash_finetune"\nlr = 3e-3')
    suite = suite.replace("seeds = [0, 1]", "seeds = [0]").replace("[0.5, 1.0]", "[1.0]")
    (tmp_path / "suite.toml").write_text(textwrap.dedent(suite) + "\n")
    ran = tlbench(env, tmp_path, "run", "suite.toml", "--no-report", "--executor", "inprocess")
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "clash_finetune" in ran.stdout
