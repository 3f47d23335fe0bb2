"""Frozen features, persisted: computed once per (backbone, dataset, precision) and kept beside the
store, so linear probes, transferability scores and later runs reuse them.

:class:`Features` (defined in :mod:`tlbench.train.context`) holds the features of each split, the
backbone's parameter count, the extraction time per example and, when the backbone has a source
head, its source-task logits per split. A :class:`FeatureCache` stores each entry as two files
named by the hash of its key:
``<hash>.safetensors`` (the feature tensor of each split, and the source-head logits of each split
when the backbone has a source head) and ``<hash>.json`` (the key itself, the backbone's parameter
count, the extraction time per image, when it was made). Both are written to a temporary file and
renamed into place, tensors first, so a crash never leaves a half-written entry; an entry that cannot
be read (truncated, corrupt, from another version) is computed again and overwritten.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from tlbench.contract.cells import canonical
from tlbench.train.context import Features  # defined beside CellContext; importable from here too

__all__ = ["Features", "FeatureCache", "feature_key_hash"]

log = logging.getLogger("tlbench.train.features")

FORMAT_VERSION = 1


def feature_key_hash(key: dict) -> str:
    """The file stem of ``key``: a sha256 of its canonical JSON (sorted keys, no whitespace)."""
    return hashlib.sha256(canonical(key).encode()).hexdigest()[:32]


def _write_atomic(path: Path, data: bytes) -> None:
    # a unique name beside the target (same file system, so os.replace is atomic); created with
    # open() rather than mkstemp so the file gets the usual permissions (umask), not 0600
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class FeatureCache:
    """``get(key, compute)``: the features stored under ``key``, or ``compute()``'s, stored first.

    ``key`` is a JSON-able dict naming everything the features depend on (the worker uses
    ``{"backbone": entry.config(), "dataset": entry.config(), "precision": "fp32" | "bf16"}``); it is
    hashed canonically, so key order does not matter.
    ``hits`` and ``misses`` count what this object served from disk and what it computed.
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0

    def paths(self, key: dict) -> tuple[Path, Path]:
        stem = self.directory / feature_key_hash(key)
        return stem.with_suffix(".safetensors"), stem.with_suffix(".json")

    def get(self, key: dict, compute: Callable[[], Features]) -> Features:
        found = self.load(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        features = compute()
        self.save(key, features)
        return features

    def load(self, key: dict) -> Features | None:
        """The stored features of ``key``, or None if there are none or they cannot be read."""
        from safetensors.torch import load_file

        tensors_path, meta_path = self.paths(key)
        if not (tensors_path.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("format") != FORMAT_VERSION or canonical(meta["key"]) != canonical(key):
                raise ValueError("stored key or format does not match")
            tensors = load_file(tensors_path)
            splits = {name: tensors[f"splits/{name}"] for name in meta["splits"]}
            logits = ({name: tensors[f"source_logits/{name}"] for name in meta["source_logits"]}
                      if meta["source_logits"] is not None else None)
            return Features(splits, int(meta["backbone_params"]), float(meta["seconds_per_image"]), logits)
        except Exception as exc:  # a corrupt or foreign entry is recomputed, never fatal
            log.warning("feature cache %s is unreadable (%s: %s); computing the features again",
                        tensors_path.name, type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
            return None

    def save(self, key: dict, features: Features) -> None:
        from safetensors.torch import save

        self.directory.mkdir(parents=True, exist_ok=True)
        tensors_path, meta_path = self.paths(key)
        tensors = {f"splits/{name}": t for name, t in features.splits.items()}
        if features.source_logits is not None:
            tensors.update({f"source_logits/{name}": t for name, t in features.source_logits.items()})
        # own, contiguous CPU copies: safetensors refuses views that share storage
        tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
        meta = {"format": FORMAT_VERSION, "key": key, "splits": list(features.splits),
                "source_logits": list(features.source_logits) if features.source_logits is not None else None,
                "backbone_params": int(features.backbone_params),
                "seconds_per_image": float(features.seconds_per_image),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        _write_atomic(tensors_path, save(tensors))
        _write_atomic(meta_path, (json.dumps(meta, indent=1, default=str) + "\n").encode())
