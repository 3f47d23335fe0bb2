"""A third-party plugin package, pip-installed on its own, shows up and runs in a suite."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "plugins" / "tlbench-example"
TLBENCH = [sys.executable, "-c", "from tlbench.cli import main; main()"]

SUITE = """
[suite]
name = "example"
seeds = [0]
label_fractions = [0.5, 1.0]

[[backbone]]
plugin = "tiny_cnn"
width = 8

[[dataset]]
plugin = "textures"
per_class = 20

[[strategy]]
plugin = "nearest_centroid"

[[strategy]]
plugin = "linear_probe"
C = 1.0
"""


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """pip-install plugins/tlbench-example (a copy, so no build files land in the repo)."""
    source = tmp_path_factory.mktemp("pkg") / "tlbench-example"
    shutil.copytree(PACKAGE, source)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(source)]
    subprocess.run(pip, check=True)
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", "tlbench-example"], check=True)


def tlbench(*args, cwd):
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run(TLBENCH + list(args), cwd=cwd, capture_output=True, text=True, env=env)


def test_installed_plugin_is_listed_with_its_distribution(installed_example, tmp_path):
    listed = tlbench("list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "textures" in listed.stdout and "nearest_centroid" in listed.stdout
    shown = tlbench("plugins", cwd=tmp_path)
    line = next(line for line in shown.stdout.splitlines() if "tlbench_example" in line)
    assert "tlbench-example" in line and "0.1.0" in line and "textures" in line and "nearest_centroid" in line


def test_installed_plugin_runs_in_a_suite(installed_example, tmp_path):
    (tmp_path / "example.toml").write_text(SUITE)
    result = tlbench("run", "example.toml", "--no-report", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    import pandas as pd
    rows = pd.read_csv(tmp_path / "results/example/results.csv")
    assert set(rows["strategy"]) == {"nearest_centroid", "linear_probe"}
    assert set(rows["dataset"]) == {"textures"}
    assert (rows["status"] == "ok").all()
    centroid = rows[rows["strategy"] == "nearest_centroid"]
    assert (centroid["trainable_params"] == 0).all()
    assert (centroid["test_acc"] > 1 / 3).all()  # three texture classes: better than chance


def test_example_plugin_passes_its_own_conformance_test(tmp_path):
    """The package's tests/test_conformance.py (tlbench.testing's kit) passes, run as its author would."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                             str(PACKAGE / "tests" / "test_conformance.py")],
                            cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(PACKAGE), "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 passed" in result.stdout  # textures: 3 dataset checks, nearest_centroid: 4 strategy checks
