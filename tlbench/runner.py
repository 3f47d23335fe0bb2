"""Run a suite's cells: skip finished ones, isolate failures, keep every finished record.

Cells are ordered so that consecutive cells share a dataset and backbone; the data and the frozen
features of a (backbone, dataset) pair are loaded once and reused by every cell that needs them.
"""
from __future__ import annotations

import platform
import socket
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version as dist_version

import numpy as np
import pluggy
import torch
from sklearn.metrics import f1_score

import tlbench
from tlbench import data as data_mod
from tlbench import engine
from tlbench.context import CellContext, Features, count_params
from tlbench.errors import Diverged, UserError
from tlbench.registry import Registry
from tlbench.store import SCHEMA_VERSION, Store
from tlbench.suite import Cell, Suite, canonical


@dataclass
class RunResult:
    failures: list[dict] = field(default_factory=list)
    interrupted: bool = False


def run_info(device: torch.device) -> dict:
    """Versions, git revision, machine and device: stored with every record."""
    packages = {}
    for name in ("torch", "timm", "transformers", "peft", "scikit-learn"):
        try:
            packages[name] = dist_version(name)
        except Exception:
            packages[name] = None
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        rev = None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {"tlbench": tlbench.__version__, "python": platform.python_version(), "packages": packages,
            "git_revision": rev, "host": socket.gethostname(), "device": f"{device.type}: {name}",
            "threads": torch.get_num_threads()}


class Workbench:
    """Runs one cell at a time in this process, with the caches that cells share."""

    def __init__(self, registry: Registry, device: torch.device):
        self.registry, self.device = registry, device
        self.info = run_info(device)
        self._data_key = None
        self._data = None
        self._features: dict[str, dict] = {}

    def dataset(self, cell: Cell):
        """(record, classes, splits on device) of a cell's dataset; the last one is kept."""
        key = canonical(cell.dataset.config())
        if key != self._data_key:
            self._data, self._features = None, {}
            record = self.registry.get("dataset", cell.dataset.plugin)
            loaded = record.load(cell.dataset.options)
            splits = {k: v.to(self.device) for k, v in data_mod.prepare(loaded).items()}
            self._data_key, self._data = key, (record, loaded.classes, splits)
        return self._data

    def features_cache(self, cell: Cell, splits):
        key = canonical(cell.backbone.config())

        def get(make_backbone) -> Features:
            if key not in self._features:
                backbone = make_backbone()
                precision = lambda: engine.autocast(self.device, cell.train.precision)  # noqa: E731
                start = time.perf_counter()
                feats = {name: engine.predict(backbone, split, cell.train.eval_batch_size, precision,
                                              call=backbone.extract)
                         for name, split in splits.items()}
                seconds = (time.perf_counter() - start) / sum(len(s) for s in splits.values())
                self._features[key] = Features(feats, count_params(backbone)[1], seconds)
            return self._features[key]
        return get

    def run(self, cell: Cell) -> dict:
        """Run one cell and return its record; never raises for a failure inside the cell."""
        record = {"schema_version": SCHEMA_VERSION, "cell_id": cell.id, "suite": cell.suite,
                  "backbone": cell.backbone.label, "dataset": cell.dataset.label,
                  "strategy": cell.strategy.label, "variant": cell.variant, "seed": cell.seed,
                  "label_fraction": cell.label_fraction, "config": cell.config(),
                  "status": "ok", "error": None, "metrics": {}, "cost": {}, "run": self.info,
                  "has_target_domain": self.registry.get("dataset", cell.dataset.plugin).has_target_domain}
        start = time.perf_counter()
        if cell.skip_reason:
            record.update(status="skipped", error=cell.skip_reason)
        else:
            try:
                self._train_and_score(cell, record)
            except Diverged as exc:
                record.update(status="diverged", error=str(exc))
            except (KeyboardInterrupt, SystemExit):
                raise
            except UserError as exc:
                record.update(status="failed", error=str(exc))
            except torch.cuda.OutOfMemoryError:
                record.update(status="failed", error="CUDA out of memory; lower [train] batch_size")
            except Exception as exc:
                record.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0][:500],
                              traceback=traceback.format_exc())
            finally:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
        record["cost"]["wall_seconds"] = time.perf_counter() - start
        record["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return record

    def _train_and_score(self, cell: Cell, record: dict) -> None:
        _seed_everything(cell.seed)
        dataset, classes, splits = self.dataset(cell)
        backbone_record = self.registry.get("backbone", cell.backbone.plugin)
        strategy = self.registry.get("strategy", cell.strategy.plugin)
        train_index = data_mod.label_subset(splits["train"].to("cpu"), cell.label_fraction, cell.seed)
        cell_splits = {**splits, "train": splits["train"].subset(train_index.to(self.device))}
        ctx = CellContext(data=cell_splits, train_index=train_index, num_classes=len(classes),
                          device=self.device, train=cell.train, seed=cell.seed,
                          build=lambda pretrained: backbone_record.build(cell.backbone.options, pretrained),
                          features_cache=self.features_cache(cell, splits))
        cost = record["cost"]
        with engine.peak_memory(self.device, cost):
            outcome = strategy.run(ctx, cell.strategy.options)
        record["metrics"] = score(outcome.logits, cell_splits, strategy.select_on)
        record["metrics"].update(outcome.extra)
        cost.update(train_seconds=ctx.clock.train_seconds,
                    images_per_second=ctx.clock.images / ctx.clock.train_seconds if ctx.clock.train_seconds else None,
                    trainable_params=outcome.trainable_params, total_params=outcome.total_params)


def score(logits: dict[str, torch.Tensor], splits: dict, select_on: str = "val") -> dict[str, float]:
    """Accuracy (and macro-F1 on the evaluation domain) from each split's logits. On a shift pair
    ``test_acc`` is the target-domain test accuracy and ``source_test_acc`` the source one;
    ``val_acc`` is the accuracy on ``select_on``."""
    acc = {}
    for name, out in logits.items():
        labels = splits[name].labels.cpu()
        acc[name] = (out.argmax(1) == labels).float().mean().item()
    shift = "target_test" in logits
    test = "target_test" if shift else "test"
    metrics = {"val_acc": acc[select_on], "test_acc": acc[test],
               "test_macro_f1": f1_score(splits[test].labels.cpu(), logits[test].argmax(1), average="macro")}
    if shift:
        metrics.update(source_test_acc=acc["test"], target_val_acc=acc["target_val"])
    return metrics


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def run_suite(suite: Suite, registry: Registry, pm: pluggy.PluginManager, store: Store,
              rerun: bool = False, progress=None, cells: list[Cell] | None = None) -> RunResult:
    """Run every cell of ``cells`` (default: all of ``suite``'s) not already finished in ``store``.
    The store's plan stays the whole suite, so its exports and report cover every finished cell.

    ``progress(event, cell, record)`` is told of ``"start"`` and ``"done"``. Ctrl-C stops after
    storing what finished; the interrupted cell is simply run again next time.
    """
    cells = suite.cells if cells is None else cells
    device = engine.resolve_device(cells[0].train.device)
    store.set_meta("suite_name", suite.options.name)
    store.set_meta("suite_toml", suite.text)
    store.set_meta("plan", {c.id: {"backbone": c.backbone.label, "dataset": c.dataset.label,
                                   "strategy": c.strategy.label, "variant": c.variant} for c in suite.cells})
    finished = set() if rerun else store.finished()
    todo = sorted((c for c in cells if c.id not in finished),
                  key=lambda c: (canonical(c.dataset.config()), canonical(c.backbone.config())))
    bench = Workbench(registry, device)
    store.set_meta("environment", bench.info)
    result = RunResult()
    progress = progress or (lambda *a: None)

    def run_cell(cell: Cell) -> dict:
        pm.hook.tlbench_cell_started(cell=cell)
        progress("start", cell, None)
        return bench.run(cell)

    def on_record(cell: Cell, record: dict) -> None:
        store.put(record)
        if record["status"] in ("failed", "diverged"):
            result.failures.append(record)
        pm.hook.tlbench_cell_finished(cell=cell, record=record)
        progress("done", cell, record)

    executor = registry.get("executor", suite.options.executor)
    try:
        executor.run(todo, run_cell, on_record)
    except KeyboardInterrupt:
        result.interrupted = True
    return result
