"""The controlling side of a run: plan, hand cells to an executor, store every finished record.

The controller turns the suite's cells into plain :class:`~tlbench.contract.session.CellSpec` data and gives
them to the executor through a :class:`RunSession` (a ``tlbench.Session``). The session hands out one
cell at a time (claimed in the store first, so two runs of one suite never run the same cell), preferring a cell of the
group (dataset, backbone) the asking worker ran last, so that its caches are reused; it stores each
record the moment it arrives and calls the lifecycle hooks. Hooks, progress and the store never
leave this process.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pluggy

from tlbench.plugins.executors import executor_options as resolve_executor
from tlbench.plugins.host import Host
from tlbench.plan.preflight import named
from tlbench.plugins.registry import Registry
from tlbench.contract.results import CellRecord
from tlbench.run.store import Store, StoreFault
from tlbench.contract.cells import Cell, canonical
from tlbench.plan.suite import Suite
from tlbench.contract.session import CellSpec
from tlbench.run.worker import new_record

#: a claim lasts this long unless renewed; the controller renews its claims every third of it
LEASE_SECONDS = 90.0


@dataclass
class RunResult:
    failures: list[CellRecord] = field(default_factory=list)
    interrupted: bool = False
    held_elsewhere: int = 0
    #: one line per dataset or backbone whose cells stopped on a user error (exit status 2)
    user_errors: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``"interrupted"``, ``"failed"`` (a cell failed or diverged, or a user error) or ``"ok"``."""
        return "interrupted" if self.interrupted else "failed" if self.failures or self.user_errors else "ok"


class RunSession:
    """The controller's :class:`tlbench.Session`: what an executor uses to get cells and give back
    records (in the controlling process).

    ``total``: how many cells this run may hand out. ``next(prefer)`` -> the next
    :class:`CellSpec` to run (or None when none is left), claimed in the store; ``done(spec,
    record)`` stores a record; ``failed(spec, reason)`` records a cell whose worker died. Cells
    another run holds are skipped (counted in ``held_elsewhere``). Thread-safe.
    """

    def __init__(self, suite: Suite, cells: list[Cell], registry: Registry, store: Store,
                 pm: pluggy.PluginManager, plugins: tuple[str, ...], rerun: bool, progress, result: RunResult,
                 predicted: dict[str, float] | None = None):
        self.registry, self.store, self.progress, self.result = registry, store, progress, result
        self.host = Host.of(pm, registry)  # pm: a Host, or a plugin manager (wrapped)
        self.predicted = predicted or {}  # cell id -> wall seconds predicted before the run
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.rerun = rerun
        self.cells = {c.id: c for c in cells}
        results_dir, measure = str(suite.results_dir.resolve()), suite.options.measure_deployment
        specs = [CellSpec.of(c, plugins, results_dir, measure)
                 for c in sorted(cells, key=lambda c: (canonical(c.dataset.config()), canonical(c.backbone.config())))]
        self.pending: OrderedDict[str, CellSpec] = OrderedDict((s.cell_id, s) for s in specs)
        self.total = len(self.pending)
        self.lock = threading.RLock()
        self._environment_stored = False
        self._claimed_at: dict[str, float] = {}
        self._stopped: set[tuple[str, str]] = set()  # (kind, config) of datasets/backbones with a user error
        self._renewer = _Renewer(store.directory, self.owner)

    def __enter__(self):
        self._renewer.start()
        return self

    def __exit__(self, kind, value, tb):
        self._renewer.stop()
        try:
            self.store.release_all(self.owner)
        except StoreFault:
            if kind is None:
                raise
            # already on the way out with an error (e.g. the disk filled): that one is reported;
            # the claims left behind expire with their lease

    def next(self, prefer: str | None = None) -> CellSpec | None:
        """The next cell to run, preferring the group ``prefer``; None when every cell is done,
        failed or held by another run."""
        with self.lock:
            order = list(self.pending.values())
            if prefer:
                order.sort(key=lambda s: s.group != prefer)  # stable: the plan's order otherwise
            for spec in order:
                del self.pending[spec.cell_id]
                if self._stopped_by(self.cells[spec.cell_id]):
                    continue
                if self.store.claim(spec.cell_id, self.owner, LEASE_SECONDS, allow_finished=self.rerun):
                    cell = self.cells[spec.cell_id]
                    self._claimed_at[spec.cell_id] = time.perf_counter()
                    self.host.cell_started(cell)
                    self.progress("start", cell, None)
                    return spec
                if not self.store.is_finished(spec.cell_id):
                    self.result.held_elsewhere += 1
            return None

    def done(self, spec: CellSpec, record: CellRecord) -> None:
        with self.lock:
            if record.input_error:
                self._stop(self.cells[spec.cell_id], record)
                return
            cell = self.cells[spec.cell_id]
            if spec.cell_id in self.predicted:
                record.cost.predicted_seconds = self.predicted[spec.cell_id]
            self.store.put(record)
            self.store.release(spec.cell_id, self.owner)
            if record.run and not self._environment_stored:
                self.store.set_meta("environment", record.run)
                self._environment_stored = True
            if record.status in ("failed", "diverged"):
                self.result.failures.append(record)
            self.host.cell_finished(cell, record)
            self.progress("done", cell, record)

    def _stop(self, cell: Cell, record: CellRecord) -> None:
        """A user error in the cell's dataset or backbone: no record; none of its cells is handed
        out any more; the error's line is kept for the end of the run."""
        self.store.release(cell.id, self.owner)
        entry = cell.dataset if record.input_error == "dataset" else cell.backbone
        self._stopped.add((record.input_error, canonical(entry.config())))
        line = named(record.input_error, entry, record.error)
        if line not in self.result.user_errors:
            self.result.user_errors.append(line)

    def _stopped_by(self, cell: Cell) -> bool:
        return (("dataset", canonical(cell.dataset.config())) in self._stopped
                or ("backbone", canonical(cell.backbone.config())) in self._stopped)

    def failed(self, spec: CellSpec, reason: str) -> None:
        """Record a cell as failed without a record from a worker (e.g. its worker died twice)."""
        claimed = self._claimed_at.get(spec.cell_id)
        record = new_record(self.cells[spec.cell_id], self.registry)
        record.status, record.error = "failed", reason
        record.cost.wall_seconds = time.perf_counter() - claimed if claimed is not None else 0.0
        record.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.done(spec, record)


class _Renewer:
    """Renews this run's claims in the store every third of the lease, on its own connection,
    while the main thread is busy training."""

    def __init__(self, directory, owner: str):
        self.directory, self.owner = directory, owner
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="tlbench-lease")

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopped.set()
        self.thread.join()

    def _loop(self):
        store = Store(self.directory, create=False)
        try:
            while not self.stopped.wait(LEASE_SECONDS / 3):
                store.renew(self.owner, LEASE_SECONDS)
        except StoreFault:
            pass  # the folder refuses writes: the main thread meets it too and ends the run
        finally:
            store.close()


def store_plan(store: Store, suite: Suite) -> None:
    """Write the suite's name, text and plan (``suite.cells``: what exports and reports cover)."""
    store.set_meta("suite_name", suite.options.name)
    store.set_meta("suite_toml", suite.text)
    store.set_meta("plan", {c.id: {"backbone": c.backbone.label, "dataset": c.dataset.label,
                                   "strategy": c.strategy.label, "variant": c.variant} for c in suite.cells})


def run_cells(suite: Suite, registry: Registry, pm: Host | pluggy.PluginManager, store: Store,
              rerun: bool = False, progress=None, cells: list[Cell] | None = None,
              plugins: tuple[str, ...] = (), executor: str | None = None,
              executor_options: dict | None = None, predicted: dict[str, float] | None = None,
              finish: Callable[[RunResult], None] | None = None) -> RunResult:
    """Run every cell of ``cells`` (default: all of ``suite``'s) not already finished in ``store``
    with the suite's executor (or ``executor`` with ``executor_options``). The store's plan stays
    the whole suite, so its exports and report cover every finished cell. ``predicted`` (cell id
    -> seconds, :mod:`tlbench.run.estimate`) is stored in each record as ``cost.predicted_seconds``.

    ``progress(event, cell, record)`` is told of ``"start"`` and ``"done"``. Ctrl-C stops after
    storing what finished; the interrupted cells are simply run again next time. The lifecycle
    hooks ``suite_started`` and ``suite_finished`` fire here, through the host ``pm`` (a plugin
    manager is wrapped in one), the second whatever happened, after ``finish(result)`` (what the
    caller writes first, e.g. results.csv and the report, so that a tracker can log them).
    """
    cells = suite.cells if cells is None else cells
    store_plan(store, suite)
    finished = set() if rerun else store.finished()
    todo = [c for c in cells if c.id not in finished]
    record, options = resolve_executor(registry, executor or suite.options.executor,
                                       suite.executor_options if executor_options is None else executor_options)
    result = RunResult()
    host = Host.of(pm, registry)
    host.suite_started(suite.options.name, suite.results_dir, todo)
    crashed = True
    try:
        with RunSession(suite, todo, registry, store, host, plugins, rerun, progress or (lambda *a: None),
                        result, predicted) as session:
            try:
                record.run(session, options)
            except KeyboardInterrupt:
                result.interrupted = True
        crashed = False
    finally:  # a library caller gets both notifications too, whatever happened
        try:
            if finish is not None and not crashed:
                finish(result)
        finally:
            host.suite_finished(suite.options.name, suite.results_dir, "failed" if crashed else result.status)
    return result
