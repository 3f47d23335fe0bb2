"""The MLflow tracker plugin (tlbench.trackers.mlflow), driven through the lifecycle hooks with real
cells and small stand-in records, read back with mlflow.search_runs."""
import importlib.util
import sys
import warnings

import pytest

mlflow = pytest.importorskip("mlflow", reason="the MLflow tracker needs `pip install tlbench[mlflow]`")

from tlbench.plugins.host import Host  # noqa: E402
from tlbench.plugins.loading import plugin_manager  # noqa: E402
from tlbench.contract.results import CellRecord, Cost  # noqa: E402
from tlbench.plan.suite import load_suite  # noqa: E402
from tlbench.testing import tiny_suite  # noqa: E402


@pytest.fixture
def suite(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TLBENCH_MLFLOW", "1")  # the test session switches the tracker off (conftest)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for reading the local store back
    pm, _ = plugin_manager()
    strategies = [{"plugin": "finetune", "lr": 3e-3}, {"plugin": "linear_probe", "C": 1.0}]
    (tmp_path / "s.toml").write_text(tiny_suite(strategies, suite={"name": "tracked", "output": str(tmp_path / "results")}))
    return pm, load_suite(tmp_path / "s.toml", Host(pm).registry)


def record(cell, status, **metrics):
    return CellRecord(cell_id=cell.id, suite=cell.suite, backbone=cell.backbone.label, dataset=cell.dataset.label,
                      strategy=cell.strategy.label, variant=cell.variant, role="transfer", status=status,
                      error=None if status == "ok" else "ValueError: boom", metrics=metrics,
                      cost=Cost(wall_seconds=1.5, peak_memory_mb=12.0),
                      train_curve=[{"step": 0, "loss": 2.3}, {"step": 5, "loss": 1.1}])


def run_suite(pm, suite, outcomes, status):
    """Call the hooks the way the runner does; ``outcomes`` pairs cells with a record or None
    (started, never finished)."""
    results_dir, host = suite.results_dir, Host(pm)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failing tracker would only warn: make it fail the test
        host.suite_started(suite.options.name, results_dir, suite.cells)
        for cell, rec in outcomes:
            host.cell_started(cell)
            if rec is not None:
                host.cell_finished(cell, rec)
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / "results.csv").write_text("cell_id,status\n")
        (results_dir / "report").mkdir(exist_ok=True)
        (results_dir / "report" / "report.html").write_text("<html></html>")
        host.suite_finished(suite.options.name, results_dir, status)


def runs(uri):
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=["tracked"], output_format="list")


def test_suite_run_is_a_parent_run_with_a_nested_run_per_cell(suite):
    pm, suite = suite
    finetune, probe = suite.cells
    run_suite(pm, suite, [(finetune, record(finetune, "ok", test_acc=0.9, val_acc=0.8)),
                          (probe, record(probe, "failed"))], status="failed")

    found = runs((suite.results_dir / "mlruns").resolve().as_uri())
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags["cell_id"]: r for r in found if "mlflow.parentRunId" in r.data.tags}
    assert len(parents) == 1 and set(children) == {finetune.id, probe.id}
    parent = parents[0]
    assert parent.info.status == "FAILED" and parent.data.tags["status"] == "failed"
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children.values())

    ok = children[finetune.id]
    assert ok.info.status == "FINISHED"
    assert ok.data.params["strategy.plugin"] == "finetune" and ok.data.params["strategy.lr"] == "0.003"
    assert ok.data.params["backbone.width"] == "4" and ok.data.params["seed"] == "0"
    assert ok.data.metrics == {"test_acc": 0.9, "val_acc": 0.8, "cost.wall_seconds": 1.5,
                               "cost.peak_memory_mb": 12.0, "train.loss": 1.1}
    assert {k: ok.data.tags[k] for k in ("status", "cell_id", "role")} == {
        "status": "ok", "cell_id": finetune.id, "role": "transfer"}
    history = mlflow.tracking.MlflowClient().get_metric_history(ok.info.run_id, "train.loss")
    assert [(m.step, m.value) for m in history] == [(0, 2.3), (5, 1.1)]
    failed = children[probe.id]
    assert failed.info.status == "FAILED" and failed.data.tags["error"] == "ValueError: boom"

    client = mlflow.tracking.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert artifacts == {"results.csv", "report"}
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "report")] == ["report/report.html"]


def test_interrupted_suite_is_killed_and_so_is_its_unfinished_cell(suite):
    pm, suite = suite
    finetune, probe = suite.cells
    run_suite(pm, suite, [(finetune, record(finetune, "ok", test_acc=0.5)), (probe, None)], status="interrupted")
    found = runs((suite.results_dir / "mlruns").resolve().as_uri())
    status = {r.data.tags.get("cell_id", "parent"): r.info.status for r in found}
    assert status == {"parent": "KILLED", finetune.id: "FINISHED", probe.id: "KILLED"}


def test_tracking_uri_from_the_environment(suite, tmp_path, monkeypatch):
    pm, suite = suite
    elsewhere = (tmp_path / "elsewhere").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    cell = suite.cells[0]
    run_suite(pm, suite, [(cell, record(cell, "ok", test_acc=1.0))], status="ok")
    assert not (suite.results_dir / "mlruns").exists()
    assert [r.info.status for r in runs(elsewhere)] == ["FINISHED", "FINISHED"]


def test_without_mlflow_the_module_defines_no_hooks(monkeypatch):
    """Imported where MLflow is missing, the module implements no hook (so registers and warns nothing)."""
    monkeypatch.setitem(sys.modules, "mlflow", None)  # find_spec("mlflow") -> None: "not installed"
    spec = importlib.util.find_spec("tlbench.trackers.mlflow")
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec.loader.exec_module(module)
    assert not [name for name in vars(module) if name.startswith("tlbench_")]


def test_switched_off_it_logs_nothing(suite, monkeypatch):
    pm, suite = suite
    monkeypatch.setenv("TLBENCH_MLFLOW", "0")
    cell = suite.cells[0]
    run_suite(pm, suite, [(cell, record(cell, "ok", test_acc=1.0))], status="ok")
    assert not (suite.results_dir / "mlruns").exists()
