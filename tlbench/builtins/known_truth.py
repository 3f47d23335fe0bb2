"""A suite whose truth we set: the ``known_truth`` dataset and the ``simulated`` strategy.

They let the statistics be checked end to end, through ``tlbench run``, the store and the
report's own loaders (``bench/known_truth.py``): each ``simulated`` strategy has a true accuracy,
a seed-to-seed spread and a per-example agreement that the suite sets, and is right on exactly
the test examples :func:`tlbench.analysis.simulate.cell_correct` says. Rows of equal strategies then show
how often the report tells equal strategies apart (false alarms), and how often its intervals
cover the truth.

**How the strategy knows its row, and the answers, without reading a label.** Each example of
``known_truth`` is a tiny uint8 image (3 × 4 × 4) whose bytes *are* its identity: a magic
``KT``, the split, the example's position in its split, the split's size, its label and the
64-bit digest of the dataset's ``row`` (:func:`tlbench.analysis.simulate.row_digest`). The dataset is
thus perfectly separable, and ``simulated`` reads its inputs — as any model does — never a
label: it decodes (row, split, position, label) and predicts the label where the simulation says
"right", another class where it says "wrong". So the conformance kit's label-leak check holds,
the label budget's cut of validation changes nothing (positions are in the inputs), and any
backbone may be named in the suite (none is built; ``tiny_cnn`` costs nothing). On any other
dataset ``simulated`` is skipped, with the reason.

**How a strategy is identified**: by its option ``name`` (write the suite label there). Its seed
effects and per-example noise are drawn from (row, name, seed): two ``[[strategy]]`` tables with
different names are independent given the row; with the same name they share their draws.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field, StrictInt, StrictStr

import tlbench
from tlbench.analysis import simulate
from tlbench.contract.errors import NotApplicable
from tlbench.plan.preflight import nothing_to_check

if TYPE_CHECKING:  # pragma: no cover
    import torch

MAGIC = b"KT"
SHAPE = (3, 4, 4)  # 48 bytes; three channels so that image backbones take it as it is
TRAIN_PER_CLASS = 2
_SPLIT_OF = {code: name for name, code in simulate.SPLITS.items()}


class KnownTruthOptions(tlbench.Options):
    examples: int = Field(360, gt=0, le=1_000_000, description="test examples per row")
    val_examples: int = Field(120, gt=0, le=1_000_000,
                              description="validation examples per row (what variants are selected on)")
    classes: int = Field(10, ge=2, le=256, description="classes; a wrong prediction is one of the others")
    row: StrictInt | StrictStr = Field(0, description="names the replicate row: different rows are independent "
                                                      "truths (a list sweeps rows: one report row each)")


def encode(row_id: int, split: str, labels: np.ndarray) -> torch.Tensor:
    """The inputs of one split: example ``i`` is a uint8 ``3 × 4 × 4`` image whose first bytes
    are ``KT``, the split code, ``i`` and the split's size (3 bytes each, big-endian), its label
    and ``row_id``, the row's 64-bit digest (:func:`tlbench.analysis.simulate.row_digest`)."""
    import torch

    n = len(labels)
    out = np.zeros((n, int(np.prod(SHAPE))), np.uint8)
    out[:, 0:2] = np.frombuffer(MAGIC, np.uint8)
    out[:, 2] = simulate.SPLITS[split]
    index = np.arange(n)
    for j, shift in enumerate((16, 8, 0)):
        out[:, 3 + j] = (index >> shift) & 0xFF
        out[:, 6 + j] = (n >> shift) & 0xFF
    out[:, 9] = labels
    out[:, 10:18] = np.frombuffer(row_id.to_bytes(8, "big"), np.uint8)
    return torch.from_numpy(out.reshape(n, *SHAPE))


def decode(inputs: torch.Tensor) -> dict[str, np.ndarray] | None:
    """``row`` (the row's digest), ``split`` (its code), and per example ``index`` (position in
    the split), ``size`` (the split's) and ``label``; None when these are not ``known_truth``
    inputs."""
    import torch

    if not isinstance(inputs, torch.Tensor) or inputs.dtype != torch.uint8 or tuple(inputs.shape[1:]) != SHAPE:
        return None
    b = inputs.detach().cpu().reshape(len(inputs), -1).numpy().astype(np.int64)
    if len(b) == 0 or not (b[:, 0:2] == np.frombuffer(MAGIC, np.uint8)).all():
        return None
    be = lambda cols: sum(b[:, c] << (8 * (len(cols) - 1 - j)) for j, c in enumerate(cols))  # noqa: E731
    rows = {int.from_bytes(bytes(r), "big") for r in b[:, 10:18].astype(np.uint8)}
    if len(rows) != 1 or len(set(b[:, 2])) != 1 or b[0, 2] not in _SPLIT_OF:
        return None
    return {"row": rows.pop(), "split": int(b[0, 2]), "index": be([3, 4, 5]), "size": be([6, 7, 8]),
            "label": b[:, 9]}


def load(options: KnownTruthOptions) -> tlbench.LoadedDataset:
    """Train (2 a class), validation and test splits of one row, labels balanced and shuffled by
    (row, split); deterministic."""
    import torch

    row_id = simulate.row_digest(options.row)
    sizes = {"train": TRAIN_PER_CLASS * options.classes, "val": options.val_examples, "test": options.examples}
    splits = {}
    for split, n in sizes.items():
        y = simulate.labels(row_id, n, options.classes, split)
        splits[split] = tlbench.Split(encode(row_id, split, y), torch.from_numpy(y))
    return tlbench.LoadedDataset([f"c{i}" for i in range(options.classes)], splits)


class SimulatedOptions(tlbench.Options):
    name: StrictStr = Field(description="this strategy's identity in the simulation (write its label here): its "
                                        "seed effects and errors are drawn from (row, name, seed)", min_length=1)
    accuracy: float = Field(0.8, ge=0, le=1, description="true accuracy: expected over seeds and test sets")
    seed_sd: float = Field(0.03, ge=0, le=0.5, description="seed-to-seed standard deviation of the accuracy "
                                                           "(accuracy units)")
    agreement: float = Field(0.5, ge=0, lt=1, description="correlation of any two cells' per-example "
                                                          "latent scores (0: independent errors)")


def run(ctx: tlbench.CellContext, options: SimulatedOptions) -> tlbench.Outcome:
    """Trains nothing: for each evaluation split, right exactly where
    :func:`tlbench.analysis.simulate.cell_correct` (row, name, seed) says, read from the inputs."""
    import torch

    logits = {}
    for split in ctx.eval_splits:
        info = decode(ctx.data[split].inputs)
        if info is None or _SPLIT_OF[info["split"]] == "train":
            raise NotApplicable(f"strategy 'simulated' runs on the known_truth dataset only (split {split!r} "
                                "is not its data)")
        name = _SPLIT_OF[info["split"]]
        size = int(info["size"][0])
        right = simulate.cell_correct_by_digest(info["row"], options.name, ctx.seed, options.accuracy,
                                                options.seed_sd, options.agreement, size, name)[info["index"]]
        offset = simulate.wrong_offsets(info["row"], options.name, ctx.seed, size, ctx.num_classes,
                                        name)[info["index"]]
        label = info["label"]
        pred = np.where(right, label, (label + offset) % ctx.num_classes)
        out = torch.zeros(len(pred), ctx.num_classes)
        out[torch.arange(len(pred)), torch.from_numpy(pred)] = 3.0
        logits[split] = out
    return tlbench.Outcome(logits, trainable_params=0, total_params=0)


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin("known_truth", "tiny inputs that carry their answer, for simulated strategies "
                                  "with a known truth (checks the statistics)", KnownTruthOptions, load,
                                  check=nothing_to_check)]


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("simulated", "trains nothing: right where a simulation with a set true accuracy, "
                                   "seed spread and agreement says (known_truth dataset only)", SimulatedOptions, run,
                                   trains_steps=False, uses_label_fraction=False)]
