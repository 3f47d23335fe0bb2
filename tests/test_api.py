"""The Python API (tlbench.run_suite, load_results, summarize) is tlbench run's own code path: the
notebook guide runs as written, a dict and a file of one suite are the same cells, the frame is
results.csv, the summary is the printed one with each row's verdict, and bad input raises the line
the command line prints."""
import re
import tomllib
from pathlib import Path

import pandas as pd
import pytest

import tlbench
from tlbench.plan.suite import to_toml
from tlbench.run import worker
from tlbench.run.store import Store, summary_tables
from tlbench.testing import tiny_suite

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs/guides/notebooks.md"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def no_training(monkeypatch) -> None:
    monkeypatch.setattr(worker.Worker, "run", lambda self, cell: pytest.fail(f"cell {cell.id} trained again"))


def test_the_notebook_guide_runs_on_the_tiny_suite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks, namespace = python_blocks(GUIDE.read_text()), {}
    assert len(blocks) >= 6
    for block in blocks:
        exec(compile(block, str(GUIDE), "exec"), namespace)  # noqa: S102 - the guide's own code
    assert namespace["suite"] == tomllib.loads(tiny_suite(seeds=(0, 1, 2), suite={"name": "notebook"}))
    results, summary = namespace["results"], namespace["summary"]
    assert len(results) == 6 and set(results["status"]) == {"ok"}
    assert list(summary["strategy"]) == ["finetune", "linear_probe"] and set(summary["interval"]) == {"examples"}
    assert summary["verdict"].str.startswith("digits · tiny_cnn · 100% of the labels").all()
    assert (tmp_path / "results/notebook/results.csv").is_file()


@pytest.fixture
def cli_run(write_suite, cli):
    """A tiny suite run by `tlbench run --no-report`: (its dict, its results folder)."""
    text = tiny_suite(seeds=(0, 1, 2), suite={"name": "same"})
    result = cli("run", write_suite(text), "--output", "out", "--no-report")
    assert result.exit_code == 0, result.output
    return tomllib.loads(text), Path("out/same")


def test_run_suite_reuses_what_tlbench_run_stored_and_returns_results_csv(cli_run, monkeypatch):
    suite, folder = cli_run
    no_training(monkeypatch)  # a dict of the same suite: the same cells, all finished
    frame = tlbench.run_suite(suite, "out", report=False)
    assert frame.to_csv(index=False) == (folder / "results.csv").read_text()  # results.csv, row for row
    assert frame.equals(tlbench.load_results(folder)) and frame.equals(tlbench.load_results(folder / "tlbench.sqlite"))
    store = Store(folder)
    assert tomllib.loads(store.meta("suite_toml")) == suite  # the dict's TOML, as a file's text is stored
    printed = summary_tables(store.frame(), store.evidence())["classification"]
    store.close()
    summary = tlbench.summarize(frame)
    shown = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in zip(summary["mean"], summary["ci_low"], summary["ci_high"])]
    assert shown == list(printed["test_acc"])


def test_a_frame_without_its_store_gets_intervals_over_seeds(cli_run):
    _, folder = cli_run
    summary = tlbench.summarize(pd.read_csv(folder / "results.csv"))
    assert set(summary["interval"]) == {"seeds"}


@pytest.mark.parametrize("change, args, options", [
    ({"strategy": [{"plugin": "finetune", "lr": -1}]}, (), {}),
    ({"backbone": [{"plugin": "no_such_backbone"}]}, (), {}),
    ({}, ("--executor", "local", "--executor-option", "workers=0"),
     {"executor": "local", "executor_options": {"workers": 0}}),
    ({}, ("--filter", "seed=1"), {"filters": {"seed": "1"}}),
    ({}, ("--filter", "strategy=lora"), {"filters": {"strategy": ["lora"]}}),
])
def test_bad_input_raises_the_line_tlbench_run_prints(write_suite, cli, change, args, options):
    suite = {**tomllib.loads(tiny_suite()), **change}
    path = write_suite(to_toml(suite))
    result = cli("run", path, *args)
    assert result.exit_code == 2
    with pytest.raises(tlbench.UserError) as raised:
        tlbench.run_suite(suite, **options)
    [line] = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert f"error: {raised.value}".replace("<dict>", str(path)) == line
    assert not Path("results").exists()  # nothing written


def test_to_toml_writes_what_tomllib_reads_back():
    suite = {"suite": {"name": "x", "seeds": (0, 1), "description": 'a "quoted"\\ line\nand é 😀\x7f'},
             "strategy": [{"plugin": "finetune", "lr": [1e-3, 3e-3]}, {"plugin": "lora", "targets": {"q v": 1}}],
             "executor": {"runtime_env": {"env_vars": {"A": "1"}}, "workers": 2, "scale": float("inf")}}
    assert tomllib.loads(to_toml(suite)) == {**suite, "suite": {**suite["suite"], "seeds": [0, 1]}}
    with pytest.raises(tlbench.UserError, match=r"^<dict>: \[train\].root: None has no TOML form"):
        to_toml({"train": {"root": None}})
