"""Per-example evidence: what a cell predicted for every example of each evaluation split.

Every cell of a dataset is evaluated on the same examples in the same order (the splits are fixed,
:mod:`tlbench.train.data`), so two cells' evidence pairs up by ``index``: that is what paired tests,
calibration and per-class results are computed from, after the run, from the store alone.
A task scored per example by a number (detection's per-image AP, segmentation's per-image IoU)
keeps :class:`ExampleScores` instead (int32 index, float32 value).
Stored compactly: one ``npz`` blob per cell (int32 index, int16 label and prediction, float16
probability of the prediction and of the true class), a few kB per split. The probability of
the true class equals that of the prediction wherever the prediction is right, so the blob keeps
it only where it is wrong (zeros elsewhere, which compress to nothing). Blobs written before it
was stored (before tlbench 0.4) load with ``prob_true`` None.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

#: the splits whose predictions are kept (those present in a cell)
SPLITS = ("val", "test", "target_val", "target_test")
#: kept too: ``ood:<set>`` (an out-of-distribution test set), ``reference:<task>`` and
#: ``reference0:<task>`` (the adapted and the pretrained backbone's probe on a forgetting reference task)
PREFIXES = ("ood", "reference", "reference0")


def kept(split: str) -> bool:
    """Whether a cell's predictions on ``split`` are stored as evidence."""
    return split in SPLITS or split.partition(":")[0] in PREFIXES and ":" in split


_FIELDS = ("index", "label", "pred", "prob")


@dataclass(frozen=True)
class SplitEvidence:
    """``index[i]`` is the row of the split (in its fixed order) that ``label[i]`` (the true
    class), ``pred[i]`` (the predicted class), ``prob[i]`` (the softmax probability of the
    predicted class) and ``prob_true[i]`` (that of the true class; None in evidence stored
    without it) belong to."""

    index: np.ndarray
    label: np.ndarray
    pred: np.ndarray
    prob: np.ndarray
    prob_true: np.ndarray | None = None

    @property
    def correct(self) -> np.ndarray:
        return self.pred == self.label

    @property
    def values(self) -> np.ndarray:
        """The per-example score whose mean is the accuracy: 1.0 right, 0.0 wrong."""
        return self.correct.astype(float)

    def __len__(self) -> int:
        return len(self.index)


@dataclass(frozen=True)
class ExampleScores:
    """The evidence of a task whose examples are scored by a number rather than right or wrong
    (:mod:`tlbench.tasks`: an image's AP, its IoU): ``value[i]`` (float32) belongs to row ``index[i]``
    of the split. The statistics read :attr:`values` from either kind of evidence alike."""

    index: np.ndarray
    value: np.ndarray

    @property
    def values(self) -> np.ndarray:
        return self.value.astype(float)

    def __len__(self) -> int:
        return len(self.index)


def from_logits(logits, labels, index=None) -> SplitEvidence:
    """The evidence of ``logits`` (``N×C`` tensor) against ``labels`` (``N``); ``index``
    defaults to ``0..N-1`` (the split's own order)."""
    import torch

    logits = logits.float()
    probs = torch.softmax(torch.nan_to_num(logits, neginf=-1e30), dim=1)
    prob, pred = probs.max(1)
    labels = torch.as_tensor(labels).cpu()
    prob_true = probs.gather(1, labels.long().view(-1, 1)).view(-1)
    index = np.arange(len(labels)) if index is None else np.asarray(index)
    return SplitEvidence(index.astype(np.int32), labels.numpy().astype(np.int16),
                         pred.numpy().astype(np.int16), prob.numpy().astype(np.float16),
                         prob_true.numpy().astype(np.float16))


def to_bytes(evidence: dict[str, SplitEvidence | ExampleScores]) -> bytes:
    arrays = {}
    for split, e in evidence.items():
        if isinstance(e, ExampleScores):
            arrays |= {f"{split}.index": e.index.astype(np.int32), f"{split}.value": e.value.astype(np.float32)}
            continue
        arrays |= {f"{split}.{field}": getattr(e, field) for field in _FIELDS}
        if e.prob_true is not None:  # kept where the prediction is wrong; zeros elsewhere
            arrays[f"{split}.prob_true"] = np.where(e.correct, np.float16(0), e.prob_true)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def from_bytes(blob: bytes) -> dict[str, SplitEvidence | ExampleScores]:
    out = {}
    with np.load(io.BytesIO(blob)) as arrays:
        for s in sorted({name.rsplit(".", 1)[0] for name in arrays.files}):
            if f"{s}.value" in arrays.files:
                out[s] = ExampleScores(arrays[f"{s}.index"], arrays[f"{s}.value"])
                continue
            index, label, pred, prob = (arrays[f"{s}.{f}"] for f in _FIELDS)
            wrong = arrays[f"{s}.prob_true"] if f"{s}.prob_true" in arrays.files else None
            prob_true = None if wrong is None else np.where(pred == label, prob, wrong)
            out[s] = SplitEvidence(index, label, pred, prob, prob_true)
    return out
