"""The executor toolkit: what every executor shares, ``inprocess``, ``local`` and ``ray`` as much
as a third party's (SLURM, Kubernetes, ...).

An executor plugin's ``run(session, options)`` asks the :class:`Session` (``tlbench.Session``) for cells
(``session.next(prefer=group)``), runs each with :func:`tlbench.run.worker.run_cell` wherever it
likes and hands back ``session.done(spec, record)``. This module gives it:

* :func:`executor_options`: the one validation of an executor's options (the suite's
  ``[executor]`` table, ``--executor-option``, a library caller's dict), with the usual one-line
  errors;
* :data:`THREAD_ENV` and :func:`thread_env`: the variables that size a worker's thread pools,
  set before it imports torch;
* :class:`Retry`: the worker-death policy, the same everywhere: a cell whose worker died is tried
  once more on a fresh worker, then recorded as failed;
* :func:`error_line`: a worker's own exception (not a cell's: ``run_cell`` records those) as one line;
* :func:`watch_parent`: a worker process exits at once when its controller dies (Linux:
  ``PR_SET_PDEATHSIG``; everywhere: a thread that sees the process reparented).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from tlbench.contract.options import validate
from tlbench.contract.session import CellSpec, Session  # noqa: F401 (Session: re-exported)

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.plugins.records import ExecutorPlugin
    from tlbench.contract.values import Options
    from tlbench.plugins.registry import Registry

__all__ = ["THREAD_ENV", "Retry", "Session", "error_line", "executor_options", "thread_env", "thread_values",
           "watch_parent"]

#: environment variables that size a process's thread pools, set before the worker imports torch
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def executor_options(registry: Registry, name: str, options: Mapping | Options | None,
                     where: str = "--executor", options_where: str | None = None) -> tuple[ExecutorPlugin, Options]:
    """The executor plugin ``name`` and its validated options (options already validated for it
    are kept as they are). An unknown name is a one-line UserError starting with ``where``, a bad
    option one starting with ``options_where`` (default: ``where`` and the name), naming the key."""
    record = registry.get("executor", name, f"{where}: ")
    if isinstance(options, record.options):
        return record, options
    return record, validate(record.options, dict(options or {}), options_where or f"{where} {record.name}")


def thread_values(threads: int) -> dict[str, str]:
    """:data:`THREAD_ENV` set to ``threads``: what a worker's environment gets (Ray's ``env_vars``)."""
    return {k: str(threads) for k in THREAD_ENV}


@contextmanager
def thread_env(threads: int) -> Iterator[None]:
    """Set :data:`THREAD_ENV` for a child process about to be started (it inherits them at exec,
    before it imports torch), then restore this process's values."""
    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update(thread_values(threads))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Retry:
    """The worker-death policy: :meth:`again` says whether a cell whose worker died should run once
    more (its first death) and, when it should not, records it as failed with ``how`` it died."""

    ATTEMPTS = 2

    def __init__(self, session):
        self.session = session

    def again(self, spec, attempt: int, where: str, how: str) -> bool:
        """``attempt`` (0 first, 1 the retry) of ``spec`` died ``how`` on ``where``: True to retry
        it on a fresh worker; else the cell is recorded as failed and False is returned."""
        if attempt + 1 < self.ATTEMPTS:
            return True
        self.session.failed(spec, f"worker died twice running this cell on {where} ({how})")
        return False


def error_line(exc: BaseException) -> str:
    """A worker's own exception as one line of at most 500 characters: ``Type: message``."""
    last = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    return (last[-1] if last else type(exc).__name__)[:500]


_PR_SET_PDEATHSIG = 1


def watch_parent(parent_pid: int) -> None:
    """Make this worker process exit at once when its controller (``parent_pid``: the controller
    passes its ``os.getpid()``, so that a controller that died while the worker was still starting
    is noticed too) dies, however it dies (SIGKILL included): on Linux the kernel sends it SIGKILL
    (``prctl(PR_SET_PDEATHSIG)``); elsewhere too, a daemon thread sees the process reparented
    (its parent pid changes) within half a second and exits."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
            pass
    if os.getppid() != parent_pid:  # it died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), daemon=True, name="tlbench-parent-watch").start()


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)
