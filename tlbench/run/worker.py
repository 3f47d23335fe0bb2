"""The worker side of the boundary: run one cell, given plain data, on one device.

Only a :class:`CellSpec` crosses to a worker (the resolved cell, the plugin modules to load, the
results folder): :func:`run_cell` can be called in this process, in a worker process or in a Ray
actor alike, and returns the cell's record; no suite is parsed here. Each process keeps one
:class:`Worker` per (plugins, device, results folder) with its caches: the dataset last loaded, its
encoded inputs per encoder, and the frozen features (in memory, and persisted beside the store).
Hooks, progress and the store stay in the controlling process.
"""
from __future__ import annotations

import contextlib
import platform
import socket
import subprocess
import time
import traceback
from datetime import datetime, timezone
from importlib.metadata import version as dist_version
from pathlib import Path

import torch

import tlbench
from tlbench.train import data as data_mod
from tlbench.train import deploy, energy, engine, retention
from tlbench.contract import evidence as evidence_mod
from tlbench.train.context import CellContext, Features, count_params
from tlbench.contract.errors import Diverged, NotApplicable, UserError
from tlbench.train.features import FeatureCache
from tlbench.plan.preflight import input_of, same_classes
from tlbench.contract.values import Split
from tlbench.plugins.host import load_registry
from tlbench.plugins.registry import Registry
from tlbench.contract.results import CellRecord
from tlbench.contract.session import CellSpec
from tlbench.train.strategies import seed_everything
from tlbench.tasks import task as tasks
from tlbench.tasks.task import scored
from tlbench.contract.cells import Cell, canonical


def run_cell(spec: CellSpec, device: str = "auto") -> CellRecord:
    """Run the cell ``spec`` names on ``device`` and return its record; never raises for a
    failure inside the cell (it is recorded)."""
    key = (spec.plugins, device, spec.results_dir, spec.measure_deployment)
    worker = _WORKERS.get(key)
    if worker is None:
        _WORKERS.clear()  # one suite at a time per process: free the last one's caches
        worker = Worker(load_registry(spec.plugins), engine.resolve_device(device),
                        Path(spec.results_dir) if spec.results_dir else None, spec.measure_deployment)
        _WORKERS[key] = worker
    return worker.run(spec.resolve(lambda kind, plugin: worker.registry.get(kind, plugin).options))


_WORKERS: dict[tuple, "Worker"] = {}


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
    return {"tlbench": tlbench.__version__, "python": platform.python_version(), "packages": packages,
            "git_revision": rev, "host": socket.gethostname(), "device": device_label(device),
            "threads": torch.get_num_threads()}


def device_label(device: torch.device) -> str:
    """A record's ``run.device``, e.g. ``"cpu: x86_64"`` or ``"cuda: NVIDIA H200"``: the kind of
    device that earlier runs are matched on to predict a suite's time (:mod:`tlbench.run.estimate`)."""
    return f"{device.type}: {torch.cuda.get_device_name(device) if device.type == 'cuda' else _cpu_name()}"


def _cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


class Worker:
    """Runs cells on one device, with the caches that cells share (the features persisted under
    ``results_dir / "features"`` when given); ``measure_deployment``: each record gets its deployed
    model's cost."""

    def __init__(self, registry: Registry, device: torch.device, results_dir: Path | None = None,
                 measure_deployment: bool = True):
        self.registry, self.device, self.measure_deployment = registry, device, measure_deployment
        self.info = run_info(device)
        self.energy_counters = energy.counters_for(device)
        self.feature_cache = FeatureCache(results_dir / "features") if results_dir else None
        self._data_key = None
        self._data = None
        self._encoded: dict[str, dict[str, Split]] = {}
        self._features: dict[str, Features] = {}
        self._references: dict[str, tuple[dict[str, Split], Features, int]] = {}
        self._speeds: dict[str, tuple[float, float]] = {}  # deployment speed by deploy.speed_key

    # -- caches --------------------------------------------------------------------------------

    def dataset(self, cell: Cell):
        """(record, classes, raw splits on the CPU) of a cell's dataset; the last one is kept."""
        key = canonical(cell.dataset.config())
        if key != self._data_key:
            self._data, self._encoded, self._features = None, {}, {}
            record = self.registry.get("dataset", cell.dataset.plugin)
            with input_of("dataset"):
                loaded = record.load(cell.dataset.options)
                splits = data_mod.prepare(loaded, cell.dataset.dedupe is not False, cell.dataset.label)
                for entry in cell.dataset.ood:
                    splits[f"ood:{entry.label}"] = self._test_split(entry, loaded.classes)
            self._data_key, self._data = key, (record, loaded.classes, splits)
        return self._data

    def _test_split(self, entry, classes: list[str]) -> Split:
        """The test split of dataset ``entry`` (an out-of-distribution set), its labels in the order
        of ``classes``."""
        loaded = self.registry.get("dataset", entry.plugin).load(entry.options)
        same_classes(classes, loaded.classes, entry)
        test = data_mod.prepare(loaded, True, entry.label)["test"]
        order = torch.as_tensor([classes.index(c) for c in loaded.classes])
        if test.targets is not None and not torch.equal(order, torch.arange(len(order))):
            raise UserError(f"its ood set {entry.label!r} lists the classes in another order; the targets of a "
                            "detection or segmentation set are class indices: "
                            "give its classes in the dataset's order")
        return Split(test.inputs, order[test.labels], test.targets)

    def reference(self, cell: Cell, entry) -> tuple[dict[str, Split], Features, int]:
        """A ``[forgetting]`` reference task's ``train`` and ``test`` examples (at most ``examples`` of
        each, stratified, fixed), encoded for the cell's backbone and on the device, the pretrained
        backbone's features of them (computed once, persisted beside the store) and its class count."""
        examples = cell.forgetting.examples
        key = self._feature_key(cell, entry, examples=examples)
        memory_key = canonical(key)
        if memory_key not in self._references:
            loaded = self.registry.get("dataset", entry.plugin).load(entry.options)
            splits = data_mod.prepare(loaded, True, entry.label)
            cut = {name: splits[name].subset(data_mod.label_subset(
                splits[name].labels, min(1.0, examples / len(splits[name])), data_mod.SPLIT_SEED))
                for name in ("train", "test")}
            data = self._on_device(self._encoder(cell), cut)
            self._references[memory_key] = (data, self._pretrained(cell, key, lambda: data), len(loaded.classes))
        return self._references[memory_key]

    def _encoder(self, cell: Cell):
        """The cell's backbone encoder (None: the backbone takes the raw inputs)."""
        backbone = self.registry.get("backbone", cell.backbone.plugin)
        with input_of("backbone"):
            return backbone.encoder(cell.backbone.options) if backbone.encoder else None

    def _on_device(self, encoder, raw: dict[str, Split]) -> dict[str, Split]:
        """``raw`` splits encoded by ``encoder`` (every split in one call) and on the device."""
        inputs = {name: split.inputs for name, split in raw.items()}
        encoded = encoder(inputs) if encoder else inputs
        return {name: Split(encoded[name], split.labels, split.targets).to(self.device) for name, split in raw.items()}

    def _feature_key(self, cell: Cell, dataset, **more) -> dict:
        """What frozen features of ``dataset`` (an entry) by the cell's backbone depend on."""
        return {"backbone": cell.backbone.config(), "dataset": dataset.config(), **more,
                "precision": engine.precision_name(self.device, cell.train.precision)}

    def _pretrained(self, cell: Cell, key: dict, splits) -> Features:
        """The pretrained backbone's features of ``splits()`` (encoded splits on the device), from the
        feature cache under ``key`` or extracted and stored there."""
        def compute() -> Features:
            record = self.registry.get("backbone", cell.backbone.plugin)
            backbone = engine.place(input_of("backbone")(record.build)(cell.backbone.options, True), self.device)
            return extract_features(backbone, splits(), cell.train.eval_batch_size,
                                    lambda: engine.autocast(self.device, cell.train.precision))
        return self.feature_cache.get(key, compute) if self.feature_cache else compute()

    def encoded(self, cell: Cell) -> dict[str, Split]:
        """The dataset's splits encoded by the cell's backbone encoder, on the device: encoded once
        per (dataset, encoder settings) and shared by every cell and backbone with those settings."""
        _, _, raw = self.dataset(cell)
        encoder = self._encoder(cell)
        key = encoder.key if encoder else "raw"
        if key not in self._encoded:
            self._encoded[key] = self._on_device(encoder, raw)
        return self._encoded[key]

    def features(self, cell: Cell) -> Features:
        """Frozen pretrained features (and source-task logits) of every split of the cell's
        dataset, computed once per (backbone, dataset, precision) and persisted beside the store."""
        key = self._feature_key(cell, cell.dataset)
        memory_key = canonical(key)
        if memory_key not in self._features:
            self._features[memory_key] = self._pretrained(cell, key, lambda: self.encoded(cell))
        return self._features[memory_key]

    # -- one cell ------------------------------------------------------------------------------

    def run(self, cell: Cell) -> CellRecord:
        """Run one cell and return its record; never raises for a failure inside the cell."""
        strategy = self.registry.get("strategy", cell.strategy.plugin)
        record = new_record(cell, self.registry)
        record.run = self.info
        start = time.perf_counter()
        if cell.skip_reason:
            record.status, record.error = "skipped", cell.skip_reason
        else:
            try:
                self._train_and_score(cell, strategy, record)
            except Diverged as exc:
                record.status, record.error = "diverged", str(exc)
            except NotApplicable as exc:  # only building the cell showed that it cannot run
                record.status, record.error = "skipped", str(exc)
            except (KeyboardInterrupt, SystemExit):
                raise
            except UserError as exc:  # of the dataset or backbone: the controller stops their cells
                record.status, record.error = "failed", str(exc)
                record.input_error = getattr(exc, "input", None)
            except torch.cuda.OutOfMemoryError:
                record.status, record.error = "failed", "CUDA out of memory; lower [train] batch_size"
            except Exception as exc:
                record.status = "failed"
                record.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
                record.traceback = traceback.format_exc()
            finally:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
        record.cost.wall_seconds = time.perf_counter() - start
        record.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return record

    def _train_and_score(self, cell: Cell, strategy, record: CellRecord) -> None:
        seed_everything(cell.seed)
        _, classes, _ = self.dataset(cell)
        splits = self.encoded(cell)
        backbone = self.registry.get("backbone", cell.backbone.plugin)
        meter = energy.Meter(self.energy_counters) if self.energy_counters else None
        probed: list[Cell] = []  # the strategy used frozen features

        def features(make_backbone) -> Features:
            probed.append(cell)
            return self.features(cell)

        ctx = new_context(cell, splits, num_classes=len(classes), device=self.device,
                          build=lambda pretrained: input_of("backbone")(backbone.build)(cell.backbone.options,
                                                                                        pretrained),
                          features_cache=features,
                          select_on=strategy.select_on,
                          energy=meter.joules if meter else lambda: None,
                          strategies=lambda name: self.registry.get("strategy", name),
                          task=tasks.get(record.task))
        cell_splits, indices = dict(ctx.data), {"train": ctx.train_index, "val": ctx.val_index}
        peak: dict = {}
        with engine.peak_memory(self.device, peak), meter or contextlib.nullcontext():
            outcome = strategy.run(ctx, cell.strategy.options)
        metrics, evidence = scored(ctx.task, outcome.logits, cell_splits, strategy.select_on, len(classes), indices)
        record.metrics = {**metrics, **outcome.extra}
        forgetting_seconds = None
        if cell.forgetting is not None and strategy.role != "baseline":
            start = time.perf_counter()
            self._forgetting(cell, ctx, bool(probed), record.metrics, evidence)
            forgetting_seconds = time.perf_counter() - start
        record.evidence = evidence_mod.to_bytes(evidence)
        record.train_curve = ctx.curve
        record.val_curve, record.best_step = ctx.val_curve, ctx.best_step
        record.steps, record.stopped = ctx.trained_steps, ctx.stopped
        seconds = ctx.clock.train_seconds
        record.cost = record.cost.model_copy(update=dict(
            peak_memory_mb=peak.get("peak_memory_mb"), train_seconds=seconds,
            examples_per_second=ctx.clock.images / seconds if seconds else None,
            trainable_params=outcome.trainable_params, total_params=outcome.total_params,
            train_examples=len(cell_splits["train"]), forgetting_seconds=forgetting_seconds, **ctx.clock.excluded,
            **(meter.reading.cost_fields() if meter else {}),
            **(self._deployment(ctx, bool(probed)) if self.measure_deployment else {})))

    def _forgetting(self, cell: Cell, ctx: CellContext, probed: bool, metrics: dict, evidence: dict) -> None:
        """Forgetting on each reference task of the cell's modality, and the source head's drift
        (:mod:`tlbench.train.retention`), into ``metrics`` and ``evidence``. Nothing when the
        strategy deployed a model without a :class:`~tlbench.Classifier` in it (nothing to probe)."""
        adapted = retention.adapted_backbone(ctx.deployed[0]) if ctx.deployed is not None else None
        if adapted is None and not probed:
            return
        modality = self.registry.get("dataset", cell.dataset.plugin).modality
        for entry in cell.forgetting.reference:
            if self.registry.get("dataset", entry.plugin).modality != modality:
                continue
            data, pretrained, num_classes = self.reference(cell, entry)
            after = pretrained if adapted is None else extract_features(
                adapted, data, cell.train.eval_batch_size, ctx.autocast)
            labels = {name: split.labels.cpu() for name, split in data.items()}
            before_ev, after_ev = retention.forgetting(pretrained, after, labels, num_classes)
            evidence[f"reference0:{entry.label}"], evidence[f"reference:{entry.label}"] = before_ev, after_ev
            metrics[f"reference_acc:{entry.label}"] = float(after_ev.correct.mean())
            metrics[f"forgetting:{entry.label}"] = float(before_ev.correct.mean() - after_ev.correct.mean())
            if pretrained.source_logits is not None and after.source_logits is not None:
                agreement, kl = retention.source_drift(pretrained.source_logits["test"], after.source_logits["test"])
                metrics[f"source_agreement:{entry.label}"], metrics[f"source_kl:{entry.label}"] = agreement, kl

    def _deployment(self, ctx: CellContext, probed: bool) -> dict:
        """Deployment cost fields of the model the strategy predicted with; a strategy that predicted
        from frozen features without one (the linear probe) deploys the backbone and a linear head."""
        if ctx.deployed is not None:
            model, adapter = ctx.deployed
        elif probed:
            model = ctx.classifier(pretrained=True)
            adapter = dict(model.head.state_dict())
        else:
            return {}
        split = ctx.data["target_test" if "target_test" in ctx.data else "test"]
        key = deploy.speed_key(model, split, ctx.train.eval_batch_size,
                               engine.precision_name(self.device, ctx.train.precision))
        cost = deploy.measure(model, split, ctx.train.eval_batch_size, ctx.autocast, adapter, self._speeds.get(key))
        self._speeds[key] = (cost.latency_ms, cost.throughput)
        return cost.cost_fields()


def budgeted_splits(splits: dict[str, Split], cell: Cell) -> tuple[dict[str, Split], dict[str, torch.Tensor]]:
    """The cell's splits: ``train`` cut to its label budget and, unless ``[train] validation =
    "full"``, ``val`` cut to the same fraction (at least one example a class: with 20 training
    labels there are no 90 labelled validation images). Also the rows each cut kept."""
    indices = {"train": data_mod.label_subset(splits["train"].labels.cpu(), cell.label_fraction, cell.seed)}
    if cell.train.validation == "budget":
        indices["val"] = data_mod.label_subset(splits["val"].labels.cpu(), cell.label_fraction, cell.seed)
    cut = {name: splits[name].subset(index.to(splits[name].labels.device)) for name, index in indices.items()}
    return {**splits, **cut}, indices


def new_context(cell: Cell, splits: dict[str, Split], **fields) -> CellContext:
    """The :class:`CellContext` of ``cell`` as the worker and the conformance kit both make it:
    ``splits`` (every split of its dataset, encoded, on the device) cut to its label budget by
    :func:`budgeted_splits`, its train options, seed and label fraction; ``fields`` are the
    context's other fields (``num_classes``, ``device``, ``build``, ``features_cache``, ...)."""
    cut, indices = budgeted_splits(splits, cell)
    return CellContext(data=cut, train_index=indices["train"], val_index=indices.get("val"), train=cell.train,
                       seed=cell.seed, label_fraction=cell.label_fraction, **fields)

def new_record(cell: Cell, registry: Registry) -> CellRecord:
    """A cell's record before it runs (status ``ok``, no metrics yet): what identifies it, its
    resolved configuration and its strategy's declared role."""
    strategy = registry.get("strategy", cell.strategy.plugin)
    return CellRecord(cell_id=cell.id, suite=cell.suite, backbone=cell.backbone.label, dataset=cell.dataset.label,
                      strategy=cell.strategy.label, variant=cell.variant, seed=cell.seed,
                      label_fraction=cell.label_fraction, config=cell.config(), role=strategy.role,
                      select_on=strategy.select_on,
                      has_target_domain=registry.get("dataset", cell.dataset.plugin).has_target_domain,
                      task=registry.get("dataset", cell.dataset.plugin).task)


def extract_features(backbone, splits: dict[str, Split], batch_size: int, precision) -> Features:
    """Features (and source-task logits, if the backbone has a source head) of every split."""
    start = time.perf_counter()
    feats = {name: engine.predict(backbone, split, batch_size, precision, call=backbone.extract)
             for name, split in splits.items()}
    seconds = (time.perf_counter() - start) / sum(len(s) for s in splits.values())
    source = None
    if backbone.source_head is not None:
        head = backbone.source_head
        with torch.no_grad():
            source = {name: head(f.to(next(head.parameters()).device)).float().cpu() for name, f in feats.items()}
    return Features(feats, count_params(backbone)[1], seconds, source)
