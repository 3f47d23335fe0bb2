"""Track suite runs in MLflow — the worked example of tlbench's lifecycle hooks.

Active when MLflow is importable (``pip install "tlbench[mlflow]"``) unless ``TLBENCH_MLFLOW=0``;
without MLflow this module defines no hooks, so it registers nothing and warns nothing (and never
imports MLflow at start-up: ``tlbench list`` stays fast).

One MLflow run per run of a suite (experiment = the suite's name), each cell a nested run with
the cell's resolved config flattened into params (``backbone.plugin``, ``strategy.lr``, ...), its
metrics and cost as metrics (and its training-loss curve as ``train.loss`` by step), and ``status``, ``cell_id``, ``role`` (and the error) as tags. When the
suite ends the parent run logs ``results.csv``, ``summary.md`` and the ``report/`` folder as
artifacts and ends FINISHED, FAILED (a cell failed or diverged) or KILLED (interrupted).

Where: ``MLFLOW_TRACKING_URI`` if set (a server, ``sqlite:///mlflow.db``, Databricks, ...), else a
local file store in ``<results dir>/mlruns`` (``mlflow ui --backend-store-uri results/<suite>/mlruns``).
"""
from __future__ import annotations

import importlib.util
import math
import os
import time
from pathlib import Path

import tlbench

#: the run status tlbench's ``status`` maps to, in MLflow's words
RUN_STATUS = {"ok": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
MAX_PARAM_LENGTH = 500  # MLflow rejects longer param values (6000 in newer servers; stay safe)


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """``{"strategy": {"plugin": "lora", "lr": 0.001}}`` -> ``{"strategy.plugin": "lora", "strategy.lr": "0.001"}``."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


def numbers(values: dict, prefix: str = "") -> dict[str, float]:
    """The finite numbers of ``values`` (flattened), as MLflow metrics take them."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{prefix}{key}"] = float(value)
    return out


class MlflowTracker:
    """The state of one suite run: the client, the parent run and each cell's nested run."""

    def __init__(self, suite_name: str, results_dir: Path, cells: list[tlbench.Cell]):
        from mlflow.tracking import MlflowClient

        self.suite_name, self.results_dir = suite_name, Path(results_dir)
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # the default: a local store beside the results, no server needed
            uri = (self.results_dir / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks to opt in to it
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(suite_name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(suite_name)
        self.experiment_id = experiment_id
        self.parent = self.client.create_run(
            experiment_id, run_name=f"{suite_name} {time.strftime('%Y-%m-%d %H:%M:%S')}",
            tags={"tlbench.plan.suite": suite_name, "tlbench.contract.cells": str(len(cells)),
                  "tlbench.results_dir": str(self.results_dir)}).info.run_id
        self.cells: dict[str, str] = {}  # cell id -> its nested run

    def cell_started(self, cell: tlbench.Cell) -> None:
        run = self.client.create_run(
            self.experiment_id, run_name=cell.describe(),
            tags={"mlflow.parentRunId": self.parent, "cell_id": cell.id, "status": "running"})
        self.cells[cell.id] = run.info.run_id
        self.client.log_batch(run.info.run_id, params=_params(cell.config()))

    def cell_finished(self, cell: tlbench.Cell, record: tlbench.CellRecord) -> None:
        from mlflow.entities import Metric, RunTag

        run_id = self.cells.pop(cell.id, None)
        if run_id is None:  # a cell another process started (or a skipped one): open its run now
            self.cell_started(cell)
            run_id = self.cells.pop(cell.id)
        now = int(time.time() * 1000)
        metrics = {**numbers(record.metrics), **numbers(record.cost.model_dump(), "cost.")}
        tags = {"status": record.status, "cell_id": cell.id, "role": record.role, "backbone": record.backbone,
                "dataset": record.dataset, "strategy": record.strategy, "variant": record.variant}
        if record.error:
            tags["error"] = str(record.error)[:MAX_PARAM_LENGTH]
        logged = [Metric(k, v, now, 0) for k, v in metrics.items()]
        for point in record.train_curve:  # the loss curve: a metric history per component
            logged += [Metric(f"train.{k}", v, now, int(point["step"]))
                       for k, v in numbers(point).items() if k != "step"]
        for point in record.val_curve:  # the validation accuracy at each evaluation during training
            logged += [Metric(f"val.{k}", v, now, int(point["step"]))
                       for k, v in numbers(point).items() if k != "step"]
        self.client.log_batch(run_id, metrics=logged, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        status = "FINISHED" if record.status in ("ok", "skipped") else "FAILED"
        self.client.set_terminated(run_id, status)

    def suite_finished(self, status: str) -> None:
        for name in ("results.csv", "summary.md"):
            if (self.results_dir / name).is_file():
                self.client.log_artifact(self.parent, str(self.results_dir / name))
        if (self.results_dir / "report").is_dir():
            self.client.log_artifacts(self.parent, str(self.results_dir / "report"), "report")
        for run_id in self.cells.values():  # cells cut short by an interruption
            self.client.set_terminated(run_id, "KILLED")
        self.client.set_tag(self.parent, "status", status)
        self.client.set_terminated(self.parent, RUN_STATUS.get(status, "FAILED"))


def _params(config: dict):
    from mlflow.entities import Param
    return [Param(k, v) for k, v in flatten(config).items()]


def installed() -> bool:
    """MLflow is importable (found without importing it)."""
    return importlib.util.find_spec("mlflow") is not None


def switched_on() -> bool:
    """Not switched off with ``TLBENCH_MLFLOW=0`` (read when a suite run starts)."""
    return os.environ.get("TLBENCH_MLFLOW", "1") != "0"


_runs: dict[str, MlflowTracker] = {}  # results dir -> the tracker of the suite run writing there

if installed():
    @tlbench.hookimpl
    def tlbench_suite_started(suite_name: str, results_dir: Path, cells: list[tlbench.Cell]) -> None:
        if switched_on():
            _runs[str(results_dir)] = MlflowTracker(suite_name, results_dir, cells)

    @tlbench.hookimpl
    def tlbench_cell_started(cell: tlbench.Cell) -> None:
        for tracker in _runs.values():
            if tracker.suite_name == cell.suite:
                tracker.cell_started(cell)

    @tlbench.hookimpl
    def tlbench_cell_finished(cell: tlbench.Cell, record: dict) -> None:
        for tracker in _runs.values():
            if tracker.suite_name == cell.suite:
                tracker.cell_finished(cell, record)

    @tlbench.hookimpl
    def tlbench_suite_finished(suite_name: str, results_dir: Path, status: str) -> None:
        tracker = _runs.pop(str(results_dir), None)
        if tracker is not None:
            tracker.suite_finished(status)
