"""tlbench rank: scores per (dataset, backbone), ranks, the stored meta entry and the CLI."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from tlbench.train.features import Features
from tlbench.plugins.loading import plugin_manager
from tlbench.run.rank import (META_KEY, collect_scorers, rank_backbones, store_scores,
                          transferability_entries)
from tlbench.plugins.host import Host
from tlbench.run.store import Store
from tlbench.plan.suite import load_suite
from tlbench.testing import tiny_suite


def rank_suite(dataset: str = "digits") -> str:
    return tiny_suite([{"plugin": "linear_probe"}], suite={"name": "ranked"},
                      train={"epochs": 1, "eval_batch_size": 512},
                      backbone={"plugin": "tiny_cnn", "width": [4, 8], "input_size": 8},
                      dataset={"plugin": dataset, "image_size": 8})


GOOD, NOISY = "tiny_cnn[width=4]", "tiny_cnn[width=8]"


@pytest.fixture
def setup(write_suite):
    pm, _ = plugin_manager()
    registry = Host(pm).registry
    return load_suite(write_suite(rank_suite()), registry), registry, collect_scorers(pm)


def _fake(labels):
    """GOOD: features linear in the labels and source logits that predict them; NOISY: noise, no head."""
    rng = np.random.default_rng(0)
    onehot = np.eye(10)[labels]
    calls = []

    def features_of(backbone, dataset):
        calls.append((backbone.label, dataset.label))
        if backbone.label == GOOD:
            feats = onehot @ rng.normal(size=(10, 12)) + 0.1 * rng.normal(size=(len(labels), 12))
            logits = {"train": torch.as_tensor(10.0 * onehot @ rng.permutation(np.eye(10, 20)))}
        else:
            feats, logits = rng.normal(size=(len(labels), 12)), None
        return Features({"train": torch.as_tensor(feats, dtype=torch.float32)}, 100, 0.01, logits)
    return features_of, calls


def test_rank_backbones_with_fake_features(setup):
    suite, registry, scorers = setup
    labels = np.random.default_rng(1).integers(0, 10, 200)
    features_of, calls = _fake(labels)
    frame = rank_backbones(suite, registry, features_of, scorers, labels_of=lambda d: labels)
    names = [s.name for s in scorers]
    assert calls == [(GOOD, "digits"), (NOISY, "digits")]
    assert list(frame[["dataset", "backbone"]].itertuples(index=False, name=None)) == \
        [("digits", GOOD), ("digits", NOISY)]
    for name in names:
        assert name in frame and f"{name}_rank" in frame
    good, noisy = frame.set_index("backbone").loc[GOOD], frame.set_index("backbone").loc[NOISY]
    for name in ("logme", "hscore", "knn"):
        assert good[name] > noisy[name]
        assert (good[f"{name}_rank"], noisy[f"{name}_rank"]) == (1, 2)
    # LEEP and NCE need source logits: the noisy backbone has no head -> NaN, no rank, a reason
    assert good["leep"] > math.log(0.9) and good["nce"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(noisy["leep"]) and math.isnan(noisy["nce"]) and pd.isna(noisy["nce_rank"])
    assert noisy["notes"] == "leep, nce: no source head (source-task logits)" and good["notes"] == ""
    assert good["n_train"] == 200 and good["feature_dim"] == 12


def test_failing_scorer_gives_nan_with_reason(setup):
    import tlbench
    suite, registry, scorers = setup
    labels = np.random.default_rng(1).integers(0, 10, 200)

    def broken(features, labels, logits):
        raise np.linalg.LinAlgError("SVD did not converge")
    bad = tlbench.ScorerPlugin("broken", "always fails", broken)
    frame = rank_backbones(suite, registry, _fake(labels)[0], [*scorers, bad], labels_of=lambda d: labels)
    assert frame["broken"].isna().all() and frame["broken_rank"].isna().all()
    assert "broken: LinAlgError: SVD did not converge" in frame["notes"].iloc[0]
    assert frame["logme"].notna().all()


def test_lower_is_better_ranks_ascending(setup):
    import tlbench
    suite, registry, _ = setup
    labels = np.zeros(200, dtype=int)
    loss = tlbench.ScorerPlugin("loss", "a lower-is-better score", lambda f, y, z: float(f.mean()),
                                higher_is_better=False)

    def features_of(backbone, dataset):
        value = 1.0 if backbone.label == GOOD else 2.0
        return Features({"train": torch.full((200, 3), value)}, 1, 0.0)
    frame = rank_backbones(suite, registry, features_of, [loss], labels_of=lambda d: labels)
    assert list(frame["loss_rank"]) == [1, 2]


def test_store_scores_merges(tmp_path, setup):
    suite, registry, scorers = setup
    labels = np.random.default_rng(1).integers(0, 10, 200)
    frame = rank_backbones(suite, registry, _fake(labels)[0], scorers, labels_of=lambda d: labels)
    entries = transferability_entries(frame, scorers)
    assert len(entries) == 2 * len(scorers)
    assert {"dataset", "backbone", "scorer", "value"} <= set(entries[0])
    assert [e["value"] for e in entries if e["backbone"] == NOISY and e["scorer"] == "leep"] == [None]
    store = Store(tmp_path / "r")
    old = {"dataset": "other", "backbone": "b", "scorer": "logme", "value": 1.0, "higher_is_better": True}
    stale = {**entries[0], "value": -99.0}
    store.set_meta(META_KEY, [old, stale])
    store_scores(store, entries)
    stored = store.meta(META_KEY)
    assert old in stored and stale not in stored and len(stored) == len(entries) + 1
    store.close()


def test_cli_rank_end_to_end(write_suite, cli, tmp_path):
    suite = write_suite(rank_suite())
    first = cli("rank", suite)
    assert first.exit_code == 0, first.output
    assert f"{GOOD}, {NOISY}: leep, nce: no source head" in first.output   # one caption line per note
    assert "digits: transferability" in first.output and GOOD in first.output and NOISY in first.output
    assert "2 extracted, 0 from the cache" in first.output
    frame = pd.read_csv(tmp_path / "results" / "ranked" / "rank.csv")
    assert len(frame) == 2 and set(frame["backbone"]) == {GOOD, NOISY}
    for name in ("logme", "leep", "nce", "hscore", "knn"):
        assert name in frame and f"{name}_rank" in frame
    for name in ("logme", "hscore", "knn"):   # tiny_cnn has no source head: leep/nce NaN with the reason
        assert frame[name].notna().all()
    assert frame["leep"].isna().all() and frame["notes"].str.contains("no source head").all()
    assert len(list((tmp_path / "results" / "ranked" / "features").glob("*.safetensors"))) == 2
    store = Store(tmp_path / "results" / "ranked")
    assert len(store.meta(META_KEY)) == 2 * 5
    store.close()

    second = cli("rank", suite)   # the persisted features are read back: nothing is extracted
    assert second.exit_code == 0, second.output
    assert "0 extracted, 2 from the cache" in second.output
    again = pd.read_csv(tmp_path / "results" / "ranked" / "rank.csv")
    pd.testing.assert_frame_equal(frame, again)


def test_cli_rank_bad_suite_is_a_user_error(write_suite, cli):
    result = cli("rank", write_suite(rank_suite("digitz")))
    assert result.exit_code == 2 and "did you mean 'digits'" in result.output


def test_rank_then_run_reports_transferability(write_suite, cli, tmp_path):
    suite = write_suite(rank_suite())
    assert cli("rank", suite).exit_code == 0
    result = cli("run", suite)
    assert result.exit_code == 0, result.output
    # the run's linear probes read the features rank persisted: no new entry in the cache
    assert len(list((tmp_path / "results" / "ranked" / "features").glob("*.safetensors"))) == 2
    report = tmp_path / "results" / "ranked" / "report"
    table = pd.read_csv(report / "tables" / "transferability.csv")
    assert set(table["scorer"]) == {"logme", "hscore", "knn"}     # leep/nce: no source head, no value
    assert set(table["strategy"]) == {"linear_probe"} and set(table["n"]) == {2}
    assert table["kendall_tau"].abs().max() <= 1
    assert (report / "figures" / "fig5_transferability.png").is_file()
