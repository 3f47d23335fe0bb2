"""The text layer of the backbone contract: tokenisation once per dataset, padding trimmed per batch.

Raw text data is a :class:`tlbench.Split` whose ``inputs`` is a ``list[str]``. A text backbone
plugin's encoder (:class:`Tokenize`) turns the texts of a dataset into ``input_ids`` and
``attention_mask`` tensors once, right-padded to one fixed width; the worker caches the result per
(dataset, ``Tokenize.key``). Per batch, :meth:`TextBackbone.prepare` cuts the batch down to its
longest row, so a task of short texts never pays for ``max_length``.

The helpers at the end (:func:`check_texts`, :func:`label_codes`) are what
every text dataset plugin uses to validate its rows and labels with one-line user errors.
"""
from __future__ import annotations

import functools
import math
import os
import socket
import warnings
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from torch import nn

from tlbench.contract.backbone import Backbone
from tlbench.contract.errors import UserError


class TruncationWarning(UserWarning):
    """Some texts of a dataset were longer than ``max_length`` tokens and were cut."""


class TextBackbone(Backbone):
    """A backbone for tokenised text: ``prepare`` trims the padding, ``forward`` takes the dict.

    A prepared batch is ``{"input_ids": (B, T) int64, "attention_mask": (B, T) int64}`` with
    ``T`` the longest row of the batch (the padding is on the right)."""

    modality = "text"

    def prepare(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mask = batch["attention_mask"]
        n = max(1, int(mask.sum(1).max())) if len(mask) else mask.shape[1]
        return {k: v[:, :n].long() for k, v in batch.items()}


class Tokenize:
    """The encoder of a text backbone: ``texts -> {"input_ids", "attention_mask"}`` (int32, CPU).

    Every row is right-padded to one width: ``max_length`` for a single split, or, when called with
    a dict of splits (``{"train": [...], "test": [...]}``), the longest tokenised text of the whole
    dataset if that is shorter. Any two results of one call can be concatenated (DANN joins source
    and target batches). Texts longer than ``max_length`` tokens are truncated (the tokenizer keeps
    its special tokens) with ONE :class:`TruncationWarning` that counts them: the worker makes one
    encoder per dataset encoding, and an encoder warns once (the dict call counts the whole dataset;
    called split by split, the first split that truncates is counted).
    """

    def __init__(self, tokenizer, max_length: int, name: str | None = None):
        if max_length < 2:
            raise UserError(f"max_length must be at least 2 tokens, got {max_length}")
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.name = name or getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__
        self.key = f"tokenizer={self.name};max_length={self.max_length}"
        self.calls = 0  # how many times this encoder tokenised (tests count them)
        self._warned = False  # one truncation warning per encoder, i.e. per dataset encoding

    def __call__(self, texts: Sequence[str] | dict[str, Sequence[str]]):
        if isinstance(texts, dict):
            names = list(texts)
            ids, truncated = self._ids([t for name in names for t in texts[name]])
            width = min(self.max_length, max((len(i) for i in ids), default=1))
            encoded = self._pad(ids, width)
            out, start = {}, 0
            for name in names:
                stop = start + len(texts[name])
                out[name] = {k: v[start:stop] for k, v in encoded.items()}
                start = stop
        else:
            ids, truncated = self._ids(list(texts))
            out = self._pad(ids, self.max_length)
        if truncated and not self._warned:
            self._warned = True
            total = sum(len(v) for v in texts.values()) if isinstance(texts, dict) else len(texts)
            scope, rest = ("the dataset", "") if isinstance(texts, dict) else \
                ("a split", "; the dataset's other splits are truncated without another warning")
            warnings.warn(f"{truncated} of {total} texts of {scope} are longer than max_length = {self.max_length} "
                          f"tokens and were truncated ({self.name}){rest}", TruncationWarning, stacklevel=2)
        return out

    def _ids(self, texts: list[str]) -> tuple[list[list[int]], int]:
        """Token ids of every text (special tokens included, at most ``max_length``) and how many
        texts had to be truncated. One pass untruncated; the long ones again, truncated."""
        self.calls += 1
        if not texts:
            return [], 0
        ids = self._tokenize(texts, truncation=False)
        long = [i for i, row in enumerate(ids) if len(row) > self.max_length]
        if long:
            cut = self._tokenize([texts[i] for i in long], truncation=True)
            for i, row in zip(long, cut):
                ids[i] = row
        return ids, len(long)

    def _tokenize(self, texts: list[str], truncation: bool) -> list[list[int]]:
        kwargs: dict[str, Any] = {"add_special_tokens": True, "padding": False, "truncation": truncation,
                                  "return_attention_mask": False, "return_token_type_ids": False}
        if truncation:
            kwargs["max_length"] = self.max_length
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            verbosity = _quiet_transformers()
            try:
                return list(self.tokenizer(texts, **kwargs)["input_ids"])
            finally:
                _restore_transformers(verbosity)

    def _pad(self, ids: list[list[int]], width: int) -> dict[str, torch.Tensor]:
        pad = self.tokenizer.pad_token_id
        pad = 0 if pad is None else int(pad)
        input_ids = np.full((len(ids), width), pad, dtype=np.int32)
        mask = np.zeros((len(ids), width), dtype=np.int32)
        for r, row in enumerate(ids):
            row = row[:width]
            input_ids[r, :len(row)] = row
            mask[r, :len(row)] = 1
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}


def _quiet_transformers():
    """Silence transformers' per-call "sequence longer than the model's maximum" logging."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        return None
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    return level


def _restore_transformers(level) -> None:
    if level is not None:
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity(level)


@functools.lru_cache(maxsize=None)
def hub_reachable() -> bool:
    """Whether the Hugging Face hub answers (checked once per process, 3 s at most), so that an
    offline machine gets a clear error at once instead of transformers' minute of retries.
    ``HF_HUB_OFFLINE=1`` says no without asking; ``HF_ENDPOINT`` names a mirror."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """``(B, T, D)`` token states -> ``(B, D)``: the first token (``"cls"``) or the mean over the
    real (unmasked) tokens (``"mean"``)."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def attention_linears(model: nn.Module, prefix: str = "") -> list[str]:
    """Names of the ``nn.Linear`` layers inside attention modules (BERT: query, key, value and
    the attention output ``dense``): LoRA's default targets for a transformer encoder."""
    named = [(n, m) for n, m in model.named_modules() if n]
    attention = [n for n, m in named if "attention" in type(m).__name__.lower()
                 or n.rsplit(".", 1)[-1] in ("attention", "attn", "self_attn")]
    found = [n for n, m in named if isinstance(m, nn.Linear) and any(n.startswith(a + ".") for a in attention)]
    return [prefix + n for n in found]


# ---------------------------------------------------------------------------------------------
# helpers for text dataset plugins


def check_texts(texts: Sequence[Any], where: str, column: str = "text") -> list[str]:
    """``texts`` as a list of str; a :class:`UserError` naming the first row (counted from 1)
    that is missing, not a string or empty."""
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            kind = "missing" if text is None or (isinstance(text, float) and math.isnan(text)) \
                else f"not text ({type(text).__name__} {text!r:.40})"
            raise UserError(f"{where}: row {i + 1}: {column} is {kind}; every row needs a non-empty string")
        if not text.strip():
            raise UserError(f"{where}: row {i + 1}: {column} is empty; every row needs a non-empty string")
        out.append(text)
    return out


def label_codes(values: Sequence[Any], where: str, column: str = "label",
                classes: list[str] | None = None) -> tuple[list[str], torch.Tensor]:
    """(class names, int64 codes) of a label column; classes sorted unless given. A missing
    label or a column with fewer than two classes is a :class:`UserError`."""
    names = []
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and math.isnan(value)) or \
                (isinstance(value, str) and not value.strip()):
            raise UserError(f"{where}: row {i + 1}: {column} is missing")
        names.append(_label_name(value))
    if classes is None:
        classes = sorted(set(names), key=_natural)
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "no rows"
        raise UserError(f"{where}: label column {column!r} has {found}; a classification task needs at least "
                        "two classes")
    index = {c: k for k, c in enumerate(classes)}
    unknown = next((n for n in names if n not in index), None)
    if unknown is not None:
        raise UserError(f"{where}: {column} value {unknown!r} is not one of the classes {classes}")
    return list(classes), torch.tensor([index[n] for n in names], dtype=torch.long)


def _label_name(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _natural(name: str):
    """Numbers in numeric order, then names in alphabetical order."""
    try:
        return (0, float(name), "")
    except ValueError:
        return (1, 0.0, name)
