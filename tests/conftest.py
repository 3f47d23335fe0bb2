import os

# One torch/OpenMP thread in the tests (and the processes they start): on a busy 2-core machine
# two threads run the suite several times slower, and timings would depend on other load.
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from tlbench.cli import main  # noqa: E402

torch.set_num_threads(1)

# The MLflow tracker (active wherever MLflow is installed) stays out of the tests' suite runs;
# tests/test_mlflow_tracker.py switches it on where it tests it. Subprocesses inherit this.
os.environ.setdefault("TLBENCH_MLFLOW", "0")


@pytest.fixture(autouse=True)
def listing_cache(tmp_path_factory, monkeypatch) -> Path:
    """Each test's own `tlbench list` cache folder (tlbench.plugins.listing), never the user's ~/.cache;
    subprocesses inherit it."""
    folder = tmp_path_factory.mktemp("listing-cache")
    monkeypatch.setenv("TLBENCH_CACHE_DIR", str(folder))
    return folder


TINY = """
[suite]
name = "tiny"
seeds = [0, 1]
label_fractions = [0.5, 1.0]

[[backbone]]
plugin = "tiny_cnn"
width = 8
input_size = 8

[[dataset]]
plugin = "digits"
image_size = 8

[[strategy]]
plugin = "finetune"
lr = 3e-3

[[strategy]]
plugin = "linear_probe"
C = [0.1, 1.0]

[train]
epochs = 1
min_steps = 3
batch_size = 256
"""


@pytest.fixture
def write_suite(tmp_path, monkeypatch):
    """Write a suite file (TINY by default) into a temporary working directory."""
    monkeypatch.chdir(tmp_path)

    def write(text: str = TINY, name: str = "suite.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path
    return write


@pytest.fixture
def cli():
    """Run the tlbench command line in-process; returns the click Result."""
    def invoke(*args):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return invoke
