"""The ``ray`` executor: cells on Ray actors, on this machine or across a Ray cluster
(``pip install "tlbench[ray]"``).

Each actor is one worker (one device and its caches, as a worker process of ``local``); the
controller keeps one cell in flight per actor, so a cell is claimed in the store only when an actor
is free to run it, and stores each record as it arrives. Fractional ``num_gpus_per_cell`` packs
several small cells onto one GPU. An actor that dies (its node went away, the out-of-memory killer)
is replaced and the cell is tried once more; if it dies again the cell is recorded as failed.
Ray does the placement; tlbench only hands cells to actors.
"""
from __future__ import annotations

import math
import os
import sys
from typing import Any

from pydantic import Field

import tlbench
from tlbench.contract.errors import UserError
from tlbench.plugins.executors import Retry, error_line, thread_values


class RayOptions(tlbench.Options):
    address: str | None = Field(None, description='an existing Ray cluster ("auto", "ray://head:10001", ...); '
                                                  'default: the Ray instance this process already joined, or a '
                                                  'new local one on this machine')
    num_cpus_per_cell: float = Field(1.0, gt=0, description="CPUs each actor reserves")
    num_gpus_per_cell: float | None = Field(None, ge=0, description="GPUs each actor reserves; fractional packs "
                                                                   "cells onto one GPU (0.25: four per GPU); default "
                                                                   "1 if the cluster has GPUs, else 0")
    workers: int | None = Field(None, ge=1, description="actors (cells in flight); default: as many as the "
                                                        "cluster's CPUs or GPUs fit")
    threads: int | None = Field(None, ge=1, description="torch/OpenMP threads per actor (default: its CPUs)")
    runtime_env: dict[str, Any] | None = Field(None, description="Ray runtime environment of the actors "
                                                                 "(env_vars, pip, working_dir, ...)")


class CellActor:
    """One worker: a device and the caches its cells share (wrapped with ``ray.remote`` on use)."""

    def __init__(self, threads: int, sys_path: list[str]):
        for entry in sys_path:  # modules given with --plugin that live beside the controller
            if entry not in sys.path and os.path.isdir(entry):
                sys.path.append(entry)
        import ray
        import torch
        torch.set_num_threads(threads)
        from tlbench.contract.errors import one_line_warnings
        one_line_warnings()
        self.device = "cuda" if ray.get_gpu_ids() else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES per actor

    def run(self, spec) -> dict:
        from tlbench.run.worker import run_cell
        return run_cell(spec, self.device)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserError('executor "ray" needs Ray: pip install "tlbench[ray]" (or use --executor local)') from None
    return ray


def plan(options: RayOptions, resources: dict, cells: int) -> tuple[int, float, int]:
    """(actors, GPUs per actor, threads per actor) for a cluster with ``resources``."""
    gpus = options.num_gpus_per_cell
    if gpus is None:
        gpus = 1.0 if resources.get("GPU", 0) else 0.0
    have_cpu, have_gpu = resources.get("CPU", 0), resources.get("GPU", 0)
    if gpus > have_gpu or options.num_cpus_per_cell > have_cpu:
        raise UserError(f"[executor] (ray): each cell asks for {options.num_cpus_per_cell:g} CPU and {gpus:g} GPU, "
                        f"the cluster has {have_cpu:g} CPU and {have_gpu:g} GPU; lower num_cpus_per_cell / "
                        "num_gpus_per_cell")
    fit = math.floor(have_cpu / options.num_cpus_per_cell + 1e-9)
    if gpus:
        fit = min(fit, math.floor(have_gpu / gpus + 1e-9))
    actors = max(1, min(options.workers or fit, cells))
    threads = options.threads or max(1, int(options.num_cpus_per_cell))
    return actors, gpus, threads


def run(session, options: RayOptions) -> None:
    if session.total == 0:
        return
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        ray.init(address=options.address, include_dashboard=False, configure_logging=True,
                 logging_level="warning")
        started = True
    actors: list = []
    try:
        count, gpus, threads = plan(options, ray.cluster_resources(), session.total)
        env = dict(options.runtime_env or {})
        env["env_vars"] = {**thread_values(threads), **env.get("env_vars", {})}
        remote = ray.remote(CellActor).options(num_cpus=options.num_cpus_per_cell, num_gpus=gpus,
                                               max_restarts=0, runtime_env=env)

        def new_actor():
            return remote.remote(threads, [p for p in sys.path if p])
        actors = [new_actor() for _ in range(count)]
        _drive(session, ray, actors, new_actor)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        if started:
            ray.shutdown()


def _drive(session, ray, actors: list, new_actor) -> None:
    from ray.exceptions import RayActorError, RayTaskError
    inflight: dict = {}  # object ref -> (actor index, spec, attempt)
    groups: list[str | None] = [None] * len(actors)
    idle = list(range(len(actors)))
    exhausted = False
    retry = Retry(session)
    while True:
        while idle and not exhausted:
            i = idle[0]
            spec = session.next(prefer=groups[i])
            if spec is None:
                exhausted = True
                break
            idle.pop(0)
            inflight[actors[i].run.remote(spec)] = (i, spec, 0)
        if not inflight:
            return
        [ref], _ = ray.wait(list(inflight), num_returns=1)
        i, spec, attempt = inflight.pop(ref)
        try:
            record = ray.get(ref)
        except RayActorError as exc:  # the actor's process or node died
            ray.kill(actors[i], no_restart=True)
            actors[i] = new_actor()
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            if retry.again(spec, attempt, "a Ray actor", f"Ray actor died: {reason}"):
                inflight[actors[i].run.remote(spec)] = (i, spec, attempt + 1)
                continue
        except RayTaskError as exc:  # the worker itself raised (not the cell: run_cell records those)
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            session.failed(spec, f"worker error: {error_line(cause)}")
        else:
            session.done(spec, record)
        groups[i] = spec.group
        idle.append(i)


@tlbench.hookimpl
def tlbench_executors():
    return [tlbench.ExecutorPlugin("ray", "Ray actors on this machine or a Ray cluster (pip install "
                                          "'tlbench[ray]'); fractional GPUs pack small cells", RayOptions, run)]
