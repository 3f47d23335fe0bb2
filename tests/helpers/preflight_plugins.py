"""Plugins for the preflight and command-line error tests (``--plugin tests.helpers.preflight_plugins``).

* ``chars``: a tiny text backbone (character codes, no tokenizer), so text datasets have cells.
* ``witness``: a strategy that leaves a file in ``$TLBENCH_WITNESS`` for every cell it runs (the
  tests' proof that nothing trained) and predicts class 0.
* ``late_failure``: a dataset whose check passes and whose load fails with a user error (as a
  dataset that fails only on one split would): the preflight cannot see it, the cell does.
* ``unchecked``: a dataset without a check, its load failing: the preflight finds it by loading.
* ``counting``: a dataset without a check that counts its loads in ``$TLBENCH_WITNESS``.
* ``fault``: a strategy whose second cell in this process fills the file system of
  ``$TLBENCH_FAULT_AT`` (a small tmpfs).
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import torch
from pydantic import Field

import tlbench
from tlbench.builtins.datasets.digits import load as load_digits


class Chars(tlbench.Backbone):
    """Mean of per-character embeddings of the first 32 characters."""

    feature_dim = 8

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.EmbeddingBag(256, self.feature_dim)

    def prepare(self, texts):
        codes = torch.tensor([[min(ord(c), 255) for c in (t[:32] + " " * 32)[:32]] for t in texts])
        return codes.to(self.embed.weight.device)

    def forward(self, codes):
        return self.embed(codes)

    def blocks(self):
        return [self.embed]


class NoOptions(tlbench.Options):
    pass


class DigitsLike(tlbench.Options):
    image_size: int = Field(8, description="digits side")


def witness(ctx: tlbench.CellContext, options: NoOptions) -> tlbench.Outcome:
    folder = os.environ.get("TLBENCH_WITNESS")
    if folder:
        (Path(folder) / f"trained-{uuid.uuid4().hex}").touch()
    logits = {name: torch.zeros(len(ctx.data[name]), ctx.num_classes) for name in ctx.eval_splits}
    return tlbench.Outcome(logits, trainable_params=0, total_params=0)


_FAULT_RUNS: dict[str, int] = {}


def fault(ctx: tlbench.CellContext, options: NoOptions) -> tlbench.Outcome:
    folder = os.environ["TLBENCH_FAULT_AT"]
    _FAULT_RUNS[folder] = _FAULT_RUNS.get(folder, 0) + 1
    if _FAULT_RUNS[folder] == 2:
        with open(Path(folder) / "filler", "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
    return witness(ctx, options)


def fail_late(options: DigitsLike) -> tlbench.LoadedDataset:
    raise tlbench.UserError("late_failure: data/test.csv: row 7: label 'x' is not a class of the training split")


def fail_unchecked(options: DigitsLike) -> tlbench.LoadedDataset:
    raise tlbench.UserError("unchecked: data/images.bin: no images")


def load_counting(options: DigitsLike) -> tlbench.LoadedDataset:
    folder = os.environ.get("TLBENCH_WITNESS")
    if folder:
        (Path(folder) / f"loaded-{uuid.uuid4().hex}").touch()
    return load_digits(options)


@tlbench.hookimpl
def tlbench_backbones():
    return [tlbench.BackbonePlugin("chars", "character embeddings (tests)", NoOptions,
                                   lambda options, pretrained: Chars(), modality="text")]


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("witness", "predicts class 0; leaves a file per cell (tests)", NoOptions, witness),
            tlbench.StrategyPlugin("fault", "the results folder fills up at the 2nd cell (tests)", NoOptions, fault)]


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin("late_failure", "check passes, load fails (tests)", DigitsLike, fail_late,
                                  check=lambda options: None),
            tlbench.DatasetPlugin("unchecked", "no check, load fails (tests)", DigitsLike, fail_unchecked),
            tlbench.DatasetPlugin("counting", "digits without a check, loads counted (tests)", DigitsLike,
                                  load_counting)]
