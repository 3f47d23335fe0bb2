"""Plugins for the executor tests (loaded with --plugin helpers.exec_plugins).

- strategy ``die``: appends its process id to the file ``marker`` and kills its own process with
  SIGKILL on the first ``times`` attempts (as the out-of-memory killer would); afterwards it returns
  constant logits.
- strategy ``nap``: sleeps ``seconds`` and returns constant logits (cells that take a while).
- lifecycle hooks: when ``TLBENCH_TEST_HOOK_LOG`` names a file, each call appends
  ``"<hook> <pid> <cell id>"`` to it; when ``TLBENCH_TEST_CTRL_C_AFTER`` is N, the N-th
  ``tlbench_cell_finished`` raises KeyboardInterrupt (a Ctrl-C in the controlling process).
"""
import os
import signal
import time

import torch
from pydantic import Field

import tlbench


class DieOptions(tlbench.Options):
    marker: str = Field(description="file that counts the attempts")
    times: int = Field(1, ge=0, description="die on the first TIMES attempts")


class NapOptions(tlbench.Options):
    seconds: float = Field(0.2, ge=0)


def constant(ctx) -> tlbench.Outcome:
    return tlbench.Outcome({name: torch.zeros(len(ctx.data[name]), ctx.num_classes) for name in ctx.eval_splits},
                           0, 0)


def die(ctx, options: DieOptions) -> tlbench.Outcome:
    with open(options.marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    with open(options.marker) as f:
        attempts = len(f.read().split())
    if attempts <= options.times:
        os.kill(os.getpid(), signal.SIGKILL)
    return constant(ctx)


def nap(ctx, options: NapOptions) -> tlbench.Outcome:
    path = os.environ.get("TLBENCH_TEST_HOOK_LOG")
    if path:
        with open(path, "a") as f:
            f.write(f"napping {os.getpid()} -\n")
    time.sleep(options.seconds)
    return constant(ctx)


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("die", "kills its own process on its first attempts", DieOptions, die),
            tlbench.StrategyPlugin("nap", "sleeps, then predicts class 0", NapOptions, nap)]


def _log(hook: str, cell) -> None:
    path = os.environ.get("TLBENCH_TEST_HOOK_LOG")
    if path:
        with open(path, "a") as f:
            f.write(f"{hook} {os.getpid()} {cell.id}\n")


@tlbench.hookimpl
def tlbench_cell_started(cell):
    _log("started", cell)


_finished = []


@tlbench.hookimpl
def tlbench_cell_finished(cell, record):
    _log("finished", cell)
    _finished.append(cell.id)
    if len(_finished) == int(os.environ.get("TLBENCH_TEST_CTRL_C_AFTER", "0")):
        raise KeyboardInterrupt
