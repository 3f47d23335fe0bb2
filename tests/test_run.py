"""`tlbench run` end to end on a tiny suite: records, exports, resume, sweeps, failures."""
import re
import csv
import json
import os
import signal
import sqlite3

import pytest
from click.testing import CliRunner
from conftest import TINY

import tlbench
from tlbench.cli import main

EXPECTED_COLUMNS = {"cell_id", "backbone", "dataset", "strategy", "seed", "label_fraction", "status", "error",
                    "test_acc", "val_acc", "train_seconds", "peak_memory_mb", "trainable_params",
                    "total_params", "variant", "test_macro_f1"}


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_run_writes_records_csv_and_summary(write_suite, cli):
    path = write_suite()
    result = cli("run", path, "--no-report")
    assert result.exit_code == 0, result.output
    assert "[6/12]" in result.stdout and "ETA" in result.stdout
    rows = read_csv(path.parent / "results/tiny/results.csv")
    assert len(rows) == 2 * 2 * (1 + 2)  # seeds x fractions x (finetune + 2 linear-probe variants)
    assert EXPECTED_COLUMNS <= set(rows[0])
    assert {r["status"] for r in rows} == {"ok"}
    for r in rows:
        assert 0.0 <= float(r["test_acc"]) <= 1.0
        assert int(r["trainable_params"]) <= int(r["total_params"])
    probe = [r for r in rows if r["strategy"] == "linear_probe"]
    assert all(int(r["trainable_params"]) == 8 * 4 * 10 + 10 for r in probe)  # 32 features x 10 classes + bias
    summary = (path.parent / "results/tiny/summary.md").read_text()
    assert "| tiny_cnn" in summary and "linear_probe" in summary and "±" not in summary and re.search(r"0\.\d{3} \[0\.\d{3}, [01]\.\d{3}\]", summary)
    db = sqlite3.connect(path.parent / "results/tiny/tlbench.sqlite")
    record = json.loads(db.execute("SELECT record FROM records LIMIT 1").fetchone()[0])
    assert record["schema_version"] == 2
    assert set(record) >= {"config", "metrics", "cost", "run", "status", "cell_id"}
    assert record["run"]["packages"]["torch"]


def test_rerun_skips_finished_cells_and_new_axis_runs_only_new_cells(write_suite, cli):
    path = write_suite()
    assert cli("run", path, "--no-report").exit_code == 0
    again = cli("run", path, "--no-report")
    assert "12 cells, 0 to run" in again.stdout
    forced = cli("run", path, "--no-report", "--rerun")
    assert "12 cells, 12 to run" in forced.stdout
    write_suite(TINY.replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    grown = cli("run", path, "--no-report")
    assert "18 cells, 6 to run" in grown.stdout
    assert len(read_csv(path.parent / "results/tiny/results.csv")) == 18


def test_dry_run_prints_plan_with_skips_and_trains_nothing(write_suite, cli):
    path = write_suite(TINY + '\n[[strategy]]\nplugin = "target_oracle"\nlr = 1e-3\n')
    result = CliRunner(env={"COLUMNS": "300"}).invoke(main, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0
    assert "16 cells" in result.stdout and "12 to run, 0 already done, 4 skipped" in result.stdout
    assert "skip: strategy 'target_oracle' needs a target domain and dataset 'digits' has none" in result.stdout
    assert not (path.parent / "results").exists()


def test_a_failing_cell_is_recorded_and_the_sweep_goes_on(write_suite, cli):
    text = TINY + '\n[[strategy]]\nplugin = "explode"\n\n[[strategy]]\nplugin = "nan_loss"\n'
    path = write_suite(text)
    result = cli("run", path, "--no-report", "--plugin", "helpers.faulty_plugins")
    assert result.exit_code == 1
    assert "8 cell(s) failed or diverged" in result.stderr
    assert "RuntimeError: boom from a plugin" in result.stderr
    rows = read_csv(path.parent / "results/tiny/results.csv")
    by_strategy = {}
    for r in rows:
        by_strategy.setdefault(r["strategy"], set()).add(r["status"])
    assert by_strategy == {"finetune": {"ok"}, "linear_probe": {"ok"}, "explode": {"failed"},
                           "nan_loss": {"diverged"}}
    assert all("boom from a plugin" in r["error"] for r in rows if r["strategy"] == "explode")
    assert all("loss became non-finite" in r["error"] for r in rows if r["strategy"] == "nan_loss")
    # failed cells are retried on the next run, ok and diverged ones are finished
    again = cli("run", path, "--no-report", "--plugin", "helpers.faulty_plugins")
    assert "20 cells, 4 to run" in again.stdout


def ctrl_c():
    raise KeyboardInterrupt


def sigterm():
    """What a scheduler (SLURM, Kubernetes) or `kill` sends; without a handler it would end pytest."""
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, "tlbench run installs no SIGTERM handler"
    os.kill(os.getpid(), signal.SIGTERM)
    raise AssertionError("SIGTERM did not interrupt the run")


@pytest.mark.parametrize("stop", [ctrl_c, sigterm])
def test_interrupt_keeps_finished_cells_and_resumes(write_suite, cli, monkeypatch, stop):
    from tlbench.run import worker
    path = write_suite()
    original, calls = worker.Worker.run, []

    def interrupted_after_five(self, cell):
        if len(calls) == 5:
            stop()
        calls.append(cell.id)
        return original(self, cell)
    monkeypatch.setattr(worker.Worker, "run", interrupted_after_five)
    result = cli("run", path, "--no-report")
    assert result.exit_code == 130
    assert "interrupted" in result.stderr
    assert len(read_csv(path.parent / "results/tiny/results.csv")) == 5
    monkeypatch.setattr(worker.Worker, "run", original)
    resumed = cli("run", path, "--no-report")
    assert resumed.exit_code == 0 and "12 cells, 7 to run" in resumed.stdout


def test_cell_ids_are_stable_and_depend_on_config(write_suite):
    from tlbench.plugins.loading import plugin_manager
    from tlbench.plugins.host import Host
    from tlbench.plan.suite import load_suite
    registry = Host(plugin_manager()[0]).registry
    a = load_suite(write_suite(), registry)
    b = load_suite(write_suite(), registry)
    assert [c.id for c in a.cells] == [c.id for c in b.cells]
    assert len({c.id for c in a.cells}) == len(a.cells)
    c = load_suite(write_suite(TINY.replace("lr = 3e-3", "lr = 1e-3")), registry)
    changed = {x.id for x in c.cells} ^ {x.id for x in a.cells}
    assert len(changed) == 2 * 4  # the four finetune cells, old and new


def test_default_grid_applies_when_the_suite_leaves_an_option_out(write_suite):
    from tlbench.plugins.loading import plugin_manager
    from tlbench.plugins.host import Host
    from tlbench.plan.suite import load_suite
    registry = Host(plugin_manager()[0]).registry
    suite = load_suite(write_suite(TINY.replace("lr = 3e-3\n", "")), registry)
    lrs = {c.strategy.options.lr for c in suite.cells if c.strategy.plugin == "finetune"}
    assert lrs == set(registry.get("strategy", "finetune").grid["lr"])


def test_list_and_plugins(cli):
    listed = cli("list", "strategies")
    assert listed.exit_code == 0
    for name in ("linear_probe", "finetune", "scratch"):
        assert name in listed.stdout
    assert "lr:" in listed.stdout
    plugins = cli("plugins")
    assert "tlbench" in plugins.stdout and tlbench.__version__ in plugins.stdout


def test_a_sweep_where_every_cell_fails_exits_1_with_the_failures(write_suite, cli):
    text = TINY.split("[[strategy]]")[0] + '[[strategy]]\nplugin = "explode"\n\n[train]\nepochs = 1\n'
    result = cli("run", write_suite(text), "--plugin", "helpers.faulty_plugins")
    assert result.exit_code == 1
    assert "warning: no report" in result.stderr and "4 cell(s) failed" in result.stderr


def test_filter_runs_part_of_a_suite_and_the_exports_keep_every_part(write_suite, cli):
    path = write_suite()
    part = cli("run", path, "--no-report", "--filter", "strategy=finetune", "--filter", "dataset=digits")
    assert part.exit_code == 0 and "12 cells, 4 chosen by --filter, 4 to run" in part.stdout
    assert {r["strategy"] for r in read_csv(path.parent / "results/tiny/results.csv")} == {"finetune"}
    plan = cli("run", path, "--dry-run", "--filter", "strategy=linear_probe,finetune")
    assert "8 to run, 4 already done, 0 skipped" in plan.stdout
    # a second part: the exports keep the first (the store's plan stays the whole suite)
    rest = cli("run", path, "--no-report", "--filter", "strategy=linear_probe")
    assert rest.exit_code == 0 and "12 cells, 8 chosen by --filter, 8 to run" in rest.stdout
    rows = read_csv(path.parent / "results/tiny/results.csv")
    assert len(rows) == 12 and {r["strategy"] for r in rows} == {"finetune", "linear_probe"}
    assert "12 cells, 0 to run" in cli("run", path, "--no-report").stdout


@pytest.mark.parametrize("flag, message", [
    ("strategy=lora", "--filter strategy=lora is not in this suite; its strategy labels: finetune, linear_probe"),
    ("seed=1", "--filter 'seed=1': write KEY=A,B with KEY one of dataset, backbone, strategy"),
])
def test_filter_errors_name_what_the_suite_has(write_suite, cli, flag, message):
    result = cli("run", write_suite(), "--filter", flag)
    assert result.exit_code == 2 and message in result.stderr
    assert result.stderr.count("\n") == 1
