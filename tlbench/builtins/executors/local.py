"""The ``local`` executor: worker processes on this machine, one per GPU by default, or several
CPU workers that share the cores between them.

Only plain data crosses: the controller sends each worker a :class:`~tlbench.contract.session.CellSpec`
over its own pipe, the worker calls :func:`tlbench.run.worker.run_cell` on its device (keeping its
caches from cell to cell) and sends the record back; the controller stores it. A worker that dies
in the middle of a cell (a segfault, the out-of-memory killer) is replaced and the cell is tried
once more on the new worker; if that one dies too the cell is recorded as failed.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import re
import signal
from dataclasses import dataclass, field
from multiprocessing.connection import wait

from pydantic import Field, field_validator

import tlbench
from tlbench.contract.errors import UserError
from tlbench.plugins.executors import Retry, error_line, thread_env, watch_parent


class LocalOptions(tlbench.Options):
    devices: list[str] | None = Field(
        None, description='devices to run workers on, e.g. ["cuda:0", "cuda:1"] or ["cpu"]; default: every '
                          'visible CUDA GPU, or the CPU when there is none')
    workers_per_gpu: int = Field(1, ge=1, description="worker processes per GPU (2+ packs small cells onto one "
                                                      "large GPU)")
    workers: int | None = Field(None, ge=1, description="worker processes on the CPU (default: 2, or a quarter of "
                                                        "the cores on a machine with more than 8)")
    threads: int | None = Field(None, ge=1, description="torch/OpenMP threads per worker (default: the available "
                                                        "cores divided among the workers)")

    @field_validator("devices")
    @classmethod
    def _device_names(cls, devices):
        if devices is not None:
            if not devices:
                raise ValueError('give at least one device, e.g. ["cpu"] or ["cuda:0"]')
            for name in devices:
                if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", name):
                    raise ValueError(f'{name!r} is not a device; use "cpu", "cuda:N" or "mps"')
        return devices


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Slot:
    """One worker process: its device and its thread count."""

    device: str
    threads: int


def plan_slots(options: LocalOptions, cpus: int | None = None, gpus: int | None = None) -> list[Slot]:
    """The workers to start: ``workers_per_gpu`` per GPU device, ``workers`` for the CPU, the
    cores divided among them (unless ``threads`` is given)."""
    import torch
    cpus = available_cpus() if cpus is None else cpus
    gpus = torch.cuda.device_count() if gpus is None else gpus
    devices = options.devices or ([f"cuda:{i}" for i in range(gpus)] if gpus else ["cpu"])
    devices = [f"cuda:0" if d == "cuda" else d for d in devices]
    if len(set(devices)) != len(devices):
        raise UserError(f"[executor] devices: {devices} names a device twice; use workers_per_gpu to run several "
                        "workers on one GPU")
    for d in devices:
        if d.startswith("cuda:") and int(d[5:]) >= gpus:
            raise UserError(f"[executor] devices: {d!r} but this machine has {gpus} visible CUDA GPU(s)"
                            + (f"; use cuda:0 ... cuda:{gpus - 1}" if gpus else '; use ["cpu"]'))
    names = []
    for d in devices:
        if d == "cpu":
            names += [d] * (options.workers or default_cpu_workers(cpus))
        else:
            names += [d] * options.workers_per_gpu
    threads = options.threads or max(1, cpus // len(names))
    return [Slot(d, threads) for d in names]


def default_cpu_workers(cpus: int) -> int:
    """2 workers (1 thread each on 2 cores), a quarter of the cores from 9 cores up: small cells
    scale badly past ~4 threads, so more processes with fewer threads each finish a sweep sooner."""
    return max(1, min(2, cpus)) if cpus <= 8 else cpus // 4


# -- the worker process -------------------------------------------------------------------------

def _serve(conn, device: str, threads: int, controller: int) -> None:
    """A worker process: receive specs, run them, send back ``("done", cell_id, record)`` or
    ``("error", cell_id, message)``; stop at ``None`` or when the controller is gone (at once,
    even in the middle of a cell, when it dies: :func:`tlbench.plugins.executors.watch_parent`)."""
    watch_parent(controller)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the controller's to handle
    import torch
    torch.set_num_threads(threads)
    from tlbench.contract.errors import one_line_warnings
    from tlbench.run.worker import run_cell
    one_line_warnings()
    while True:
        try:
            spec = conn.recv()
        except (EOFError, OSError):
            return
        if spec is None:
            return
        try:
            reply = ("done", spec.cell_id, run_cell(spec, device))
        except BaseException as exc:  # run_cell records cell failures; this is the worker's own fault
            reply = ("error", spec.cell_id, error_line(exc))
        conn.send(reply)


@dataclass(eq=False)
class _Process:
    slot: Slot
    process: mp.Process
    conn: object
    spec: object = None      # the cell it is running
    attempt: int = 0         # 1 on a retry after a worker died on this cell
    group: str | None = None  # the group of the last cell it ran (its caches)

    @classmethod
    def start(cls, ctx, slot: Slot) -> "_Process":
        ours, theirs = ctx.Pipe(duplex=True)
        process = ctx.Process(target=_serve, args=(theirs, slot.device, slot.threads, os.getpid()), daemon=True,
                              name=f"tlbench-worker-{slot.device}")
        with thread_env(slot.threads):
            process.start()
        theirs.close()
        return cls(slot, process, ours)

    def send(self, spec, attempt: int = 0) -> None:
        self.spec, self.attempt = spec, attempt
        self.conn.send(spec)

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def death(exitcode: int | None) -> str:
    """How a worker process ended, in words."""
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the out-of-memory killer sends SIGKILL)" if -exitcode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {exitcode}"


def run(session, options: LocalOptions) -> None:
    slots = plan_slots(options)[:session.total]  # no more workers than cells
    if not slots:
        return
    ctx = mp.get_context("spawn")  # never fork a process that holds CUDA, threads or a database
    workers: list[_Process | None] = []
    try:
        workers = [_Process.start(ctx, slot) for slot in slots]
        _drive(session, ctx, slots, workers)
    finally:  # normal end, Ctrl-C or an error: no worker outlives the run
        for w in workers:
            if w is not None:
                w.stop() if w.spec is None else w.kill()


def _drive(session, ctx, slots: list[Slot], workers: list[_Process | None]) -> None:
    """Give each idle worker the next cell (preferring its last group), store what comes back,
    replace dead workers, until no cell is left and none is in flight. ``workers[i]`` is None
    after its process died with no cell to retry: a fresh one starts when there is a cell for it."""
    exhausted = False
    retry = Retry(session)
    while True:
        for i, w in enumerate(workers):
            if exhausted or (w is not None and w.spec is not None):
                continue
            spec = session.next(prefer=w.group if w is not None else None)
            if spec is None:
                exhausted = True
                continue
            if w is None:
                workers[i] = w = _Process.start(ctx, slots[i])
            w.send(spec)
        busy = [w for w in workers if w is not None and w.spec is not None]
        if not busy:
            return
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
        for i, w in enumerate(workers):
            if w is None or w.spec is None or not (w.conn in ready or w.process.sentinel in ready):
                continue
            reply = None
            try:
                if w.conn.poll():
                    reply = w.conn.recv()
            except (EOFError, OSError):
                pass
            if reply is not None:
                kind, cell_id, payload = reply
                spec, w.spec, w.group = w.spec, None, w.spec.group
                assert cell_id == spec.cell_id
                if kind == "done":
                    session.done(spec, payload)
                else:
                    session.failed(spec, f"worker error on {w.slot.device}: {payload}")
                continue
            if w.process.is_alive() and w.conn not in ready:
                continue
            # the worker died in the middle of its cell: a fresh one retries it once
            w.process.join(5)
            how = death(w.process.exitcode)
            spec, attempt = w.spec, w.attempt
            w.spec = None
            w.kill()
            if retry.again(spec, attempt, w.slot.device, how):
                workers[i] = fresh = _Process.start(ctx, w.slot)
                fresh.send(spec, attempt=attempt + 1)
            else:
                workers[i] = None


@tlbench.hookimpl
def tlbench_executors():
    return [tlbench.ExecutorPlugin(
        "local", "worker processes on this machine: one per GPU (or workers_per_gpu), or CPU workers sharing "
                 "the cores", LocalOptions, run)]
