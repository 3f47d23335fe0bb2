"""The persisted feature cache: hits, misses, atomic files, corrupt entries recomputed."""
import json

import pytest
import torch

from tlbench.train.context import Features as ContextFeatures
from tlbench.train.features import FeatureCache, Features, feature_key_hash

KEY = {"backbone": {"plugin": "tiny_cnn", "width": 8}, "dataset": {"plugin": "digits"},
       "encoder": None, "precision": "fp32"}


def _features(seed=0, logits=True) -> Features:
    g = torch.Generator().manual_seed(seed)
    splits = {"train": torch.randn(7, 4, generator=g), "val": torch.randn(3, 4, generator=g)}
    source = {k: torch.randn(len(v), 10, generator=g) for k, v in splits.items()} if logits else None
    return Features(splits, backbone_params=1234, seconds_per_image=0.5, source_logits=source)


class Counter:
    def __init__(self, make):
        self.calls, self.make = 0, make

    def __call__(self):
        self.calls += 1
        return self.make()


def _equal(a: Features, b: Features) -> bool:
    same = lambda x, y: x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)  # noqa: E731
    return (same(a.splits, b.splits) and a.backbone_params == b.backbone_params
            and a.seconds_per_image == b.seconds_per_image
            and (a.source_logits is None) == (b.source_logits is None)
            and (a.source_logits is None or same(a.source_logits, b.source_logits)))


def test_context_reexports_features():
    assert ContextFeatures is Features


def test_second_get_reads_disk_and_round_trips(tmp_path):
    compute = Counter(_features)
    first = FeatureCache(tmp_path).get(KEY, compute)
    # a new cache object (a new process) on the same folder: no compute, equal tensors
    again = FeatureCache(tmp_path)
    second = again.get(dict(reversed(list(KEY.items()))), compute)   # key order does not matter
    assert compute.calls == 1 and (again.hits, again.misses) == (1, 0)
    assert _equal(first, second) and _equal(second, _features())
    stem = feature_key_hash(KEY)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{stem}.json", f"{stem}.safetensors"]
    meta = json.loads((tmp_path / f"{stem}.json").read_text())
    assert meta["key"] == KEY and meta["backbone_params"] == 1234 and meta["created"]


def test_without_source_logits(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.get(KEY, lambda: _features(logits=False))
    got = FeatureCache(tmp_path).get(KEY, lambda: pytest.fail("recomputed"))
    assert got.source_logits is None and _equal(got, _features(logits=False))


def test_different_key_computes(tmp_path):
    cache = FeatureCache(tmp_path)
    compute = Counter(_features)
    cache.get(KEY, compute)
    cache.get({**KEY, "precision": "bf16"}, compute)
    cache.get({**KEY, "backbone": {"plugin": "tiny_cnn", "width": 16}}, compute)
    assert compute.calls == 3 and len(list(tmp_path.glob("*.safetensors"))) == 3


@pytest.mark.parametrize("damage", ["truncate", "garbage_json", "missing_json", "other_key"])
def test_corrupt_entry_is_recomputed(tmp_path, damage, caplog):
    cache = FeatureCache(tmp_path)
    cache.get(KEY, _features)
    tensors, meta = cache.paths(KEY)
    if damage == "truncate":
        tensors.write_bytes(tensors.read_bytes()[:50])
    elif damage == "garbage_json":
        meta.write_text("{not json")
    elif damage == "missing_json":
        meta.unlink()
    else:
        stored = json.loads(meta.read_text())
        meta.write_text(json.dumps({**stored, "key": {"something": "else"}}))
    compute = Counter(lambda: _features(seed=1))
    got = FeatureCache(tmp_path).get(KEY, compute)
    assert compute.calls == 1 and _equal(got, _features(seed=1))
    # rewritten whole: the next get reads it
    assert _equal(FeatureCache(tmp_path).get(KEY, lambda: pytest.fail("recomputed")), _features(seed=1))
    if damage != "missing_json":
        assert "unreadable" in caplog.text


def test_failed_compute_leaves_nothing(tmp_path):
    def boom():
        raise RuntimeError("out of memory")
    with pytest.raises(RuntimeError):
        FeatureCache(tmp_path).get(KEY, boom)
    assert not any(tmp_path.iterdir())


def test_crash_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    import tlbench.train.features as mod

    def crash(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(mod.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        FeatureCache(tmp_path).save(KEY, _features())
    assert not any(tmp_path.iterdir())    # the temporary file is gone, nothing half-written in place


def test_views_sharing_storage_are_saved(tmp_path):
    whole = torch.randn(10, 4)
    feats = Features({"train": whole[:6], "val": whole[6:]}, 1, 0.1)
    FeatureCache(tmp_path).get(KEY, lambda: feats)
    assert _equal(FeatureCache(tmp_path).get(KEY, lambda: pytest.fail("recomputed")), feats)


def test_files_get_the_usual_permissions(tmp_path):
    import os
    FeatureCache(tmp_path).get(KEY, _features)
    umask = os.umask(0)
    os.umask(umask)
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask
