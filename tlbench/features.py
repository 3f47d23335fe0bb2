"""Frozen features, persisted: computed once per (backbone, dataset, precision) and kept beside the
store, so linear probes, transferability scores and later runs reuse them."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from safetensors.torch import load_file, save_file

from tlbench.context import Features


class FeatureCache:
    """``get(key, compute)``: the features stored under ``key`` (a JSON-able dict), or
    ``compute()``'s, written atomically (a crash never leaves half a file)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def get(self, key: dict, compute: Callable[[], Features]) -> Features:
        name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        tensors, meta = self.directory / f"{name}.safetensors", self.directory / f"{name}.json"
        try:
            info = json.loads(meta.read_text())
            flat = load_file(tensors)
        except (OSError, ValueError):
            return self._put(key, tensors, meta, compute())
        splits = {k[len("features."):]: v for k, v in flat.items() if k.startswith("features.")}
        source = {k[len("source."):]: v for k, v in flat.items() if k.startswith("source.")} or None
        return Features(splits, info["backbone_params"], info["seconds_per_image"], source)

    def _put(self, key: dict, tensors: Path, meta: Path, features: Features) -> Features:
        self.directory.mkdir(parents=True, exist_ok=True)
        flat = {f"features.{k}": v.contiguous() for k, v in features.splits.items()}
        flat.update({f"source.{k}": v.contiguous() for k, v in (features.source_logits or {}).items()})
        for path, write in ((tensors, lambda p: save_file(flat, p)),
                            (meta, lambda p: Path(p).write_text(json.dumps(
                                {"key": key, "backbone_params": features.backbone_params,
                                 "seconds_per_image": features.seconds_per_image})))):
            tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
            write(str(tmp))
            os.replace(tmp, path)
        return features
