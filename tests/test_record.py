"""The typed record, its evidence and the version-2 store."""
import json
import sqlite3

import numpy as np
import pytest
import torch

from tlbench.contract import evidence
from tlbench.contract.errors import UserError
from tlbench.contract.results import CellRecord, Cost, columns, flatten
from tlbench.run.store import Store


def test_evidence_round_trips_compactly_and_pairs_by_index():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0], [float("-inf"), 0.0]])
    labels = torch.tensor([0, 0, 0, 1])
    e = evidence.from_logits(logits, labels, index=[5, 6, 7, 9])
    assert e.pred.tolist() == [0, 1, 0, 1] and e.correct.tolist() == [True, False, True, True]
    assert e.prob[3] == pytest.approx(1.0) and 0.5 < e.prob[0] < 1
    back = evidence.from_bytes(evidence.to_bytes({"test": e, "val": e}))
    assert set(back) == {"test", "val"}
    for field in ("index", "label", "pred", "prob"):
        assert np.array_equal(getattr(back["test"], field), getattr(e, field))
    assert back["test"].index.dtype == np.int32 and back["test"].prob.dtype == np.float16
    assert e.prob_true.dtype == np.float16 and back["test"].prob_true.dtype == np.float16
    assert np.array_equal(back["test"].prob_true, e.prob_true)
    assert e.prob_true[1] == pytest.approx(1 / (1 + np.e), abs=1e-3)   # the true class's, wrong
    assert np.array_equal(e.prob_true[e.correct], e.prob[e.correct])
    big = evidence.from_logits(torch.randn(1000, 10), torch.randint(0, 10, (1000,)))
    assert len(evidence.to_bytes({"test": big})) < 12_000  # not a JSON list of floats


def test_evidence_without_the_true_class_probability_still_loads():
    """Blobs written before ``prob_true`` was stored: NLL unavailable (None), nothing guessed."""
    e = evidence.from_logits(torch.eye(3), torch.tensor([0, 2, 2]))
    old = evidence.SplitEvidence(e.index, e.label, e.pred, e.prob)
    back = evidence.from_bytes(evidence.to_bytes({"test": old}))["test"]
    assert back.prob_true is None and back.correct.tolist() == [True, False, True]


def test_the_store_keeps_evidence_with_its_record_and_flattens_every_metric(tmp_path):
    store = Store(tmp_path)
    e = evidence.from_logits(torch.eye(3), torch.arange(3))
    store.put(CellRecord(cell_id="a", metrics={"test_acc": 1.0, "domain_acc": 0.5},
                         cost=Cost(train_seconds=2.0, energy_joules=None), evidence=evidence.to_bytes({"test": e})))
    store.put(CellRecord(cell_id="b", status="failed", error="boom"))
    assert set(store.evidence()) == {"a"} and store.evidence(["b"]) == {}
    assert store.evidence()["a"]["test"].correct.all()
    frame = store.frame()
    assert list(frame.columns) == columns(store.records())
    assert frame.set_index("cell_id").loc["a", "domain_acc"] == 0.5  # a strategy's own metric reaches the csv
    assert "forward_gflops" not in frame.columns
    raw = json.loads(store.db.execute("SELECT record FROM records WHERE cell_id = 'a'").fetchone()[0])
    assert "evidence" not in raw and raw["schema_version"] == 2
    store.put(CellRecord(cell_id="a", status="failed"))  # replaced: its old evidence goes with it
    assert store.evidence() == {}
    assert flatten(store.records()[0])["status"] == "failed"


def test_evidence_of_more_cells_than_one_query_takes(tmp_path):
    store = Store(tmp_path)
    blob = evidence.to_bytes({"test": evidence.from_logits(torch.eye(2), torch.arange(2))})
    for i in range(1200):
        store.put(CellRecord(cell_id=f"c{i}", evidence=blob))
    asked = [f"c{i}" for i in range(0, 1200, 2)] + ["c0", "missing"]
    assert set(store.evidence(asked)) == {f"c{i}" for i in range(0, 1200, 2)}
    assert len(store.evidence()) == 1200


def test_a_store_with_0_3_undertrained_flags_still_loads_and_flattens_stopped_and_budget(tmp_path):
    """tlbench 0.3 stored ``undertrained`` in every record; 0.4 replaced it by ``stopped`` (same
    schema version 2: the field is dropped on reading, ``stopped`` is None there)."""
    store = Store(tmp_path)
    old = json.loads(CellRecord(cell_id="old", steps=40, config={"train": {"epochs": 1}}).to_json())
    del old["stopped"]
    old["undertrained"] = True
    store.db.execute("INSERT INTO records VALUES (?, ?, ?)", ("old", "ok", json.dumps(old)))
    store.put(CellRecord(cell_id="new", steps=80, stopped="cap", config={"train": {"epochs": 1, "budget": 2.0}}))
    store.close()
    store = Store(tmp_path, create=False)
    records = {r.cell_id: r for r in store.records()}
    assert records["old"].stopped is None and not hasattr(records["old"], "undertrained")
    frame = store.frame().set_index("cell_id")
    assert "undertrained" not in frame.columns
    assert frame.loc["new", "stopped"] == "cap" and frame.loc["new", "budget"] == 2.0
    assert frame.loc["old", "budget"] == 1.0  # left out of a configuration at its default
    assert "undertrained" not in json.loads(records["old"].to_json())


def test_a_version_1_store_is_refused_untouched(tmp_path):
    db = sqlite3.connect(tmp_path / "tlbench.sqlite")
    db.execute("CREATE TABLE records (cell_id TEXT PRIMARY KEY, status TEXT NOT NULL, record TEXT NOT NULL)")
    db.execute("INSERT INTO records VALUES ('x', 'ok', '{}')")
    db.commit()
    db.close()
    with pytest.raises(UserError, match="schema version 1; this tlbench reads version 2"):
        Store(tmp_path)
    assert sqlite3.connect(tmp_path / "tlbench.sqlite").execute(
        "SELECT count(*) FROM records").fetchone() == (1,)


def test_dict_access_still_reads_but_warns():
    record = CellRecord(cell_id="x", metrics={"test_acc": 0.5}, cost=Cost(train_seconds=1.0))
    with pytest.warns(DeprecationWarning, match="record.metrics"):
        assert record["metrics"] == {"test_acc": 0.5}
    with pytest.warns(DeprecationWarning):
        assert record["cost"]["train_seconds"] == 1.0 and record.get("nothing", 3) == 3


def test_the_label_budget_cuts_validation_unless_told_full():
    from types import SimpleNamespace

    from tlbench.contract.cells import TrainOptions
    from tlbench.contract.values import Split
    from tlbench.run.worker import budgeted_splits

    labels = torch.arange(200) % 4
    splits = {name: Split(torch.zeros(200, 1), labels) for name in ("train", "val", "test")}
    cell = SimpleNamespace(label_fraction=0.05, seed=3, train=TrainOptions())
    cut, index = budgeted_splits(splits, cell)
    assert len(cut["train"]) == len(cut["val"]) == 12 and len(cut["test"]) == 200  # ceil(0.05 * 50) a class
    assert sorted(cut["val"].labels.tolist()) == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    assert torch.equal(cut["val"].labels, labels[index["val"]])
    tiny = SimpleNamespace(label_fraction=0.001, seed=3, train=TrainOptions())
    assert len(budgeted_splits(splits, tiny)[0]["val"]) == 4  # at least one example a class
    full = SimpleNamespace(label_fraction=0.05, seed=3, train=TrainOptions(validation="full"))
    cut, index = budgeted_splits(splits, full)
    assert len(cut["val"]) == 200 and "val" not in index


def test_duplicates_are_counted_and_cross_split_copies_dropped_from_train_and_val():
    from tlbench.train.data import deduplicate
    from tlbench.contract.values import Split

    def split(texts, labels):
        return Split(list(texts), torch.tensor(labels))

    splits = {"test": split(["Free prize!", "hello", "hello"], [1, 0, 0]),
              "val": split(["free   PRIZE!", "see you"], [1, 0]),
              "train": split(["hello", "see you", "new", "free prize!", "other"], [1, 0, 0, 0, 0])}
    kept, found = deduplicate(splits, dedupe=False)
    assert kept is splits
    assert (found.within, found.across, found.conflicting) == (1, 4, 2)  # "hello" and "free prize!" conflict
    cleaned, again = deduplicate(splits, dedupe=True)
    assert again == found
    assert cleaned["test"].inputs == splits["test"].inputs  # the test set never changes
    assert cleaned["val"].inputs == ["see you"]
    assert cleaned["train"].inputs == ["new", "other"] and cleaned["train"].labels.tolist() == [0, 0]
    images = {name: Split(torch.zeros(3, 1, 2, 2, dtype=torch.uint8) + i, torch.zeros(3, dtype=torch.long))
              for i, name in enumerate(("train", "val", "test"))}
    assert deduplicate(images, True)[1].within == 6 and deduplicate(images, True)[1].across == 0


def test_a_duplicated_text_file_warns_with_the_counts_and_no_test_text_is_trained_on(tmp_path):
    import csv

    from tlbench.builtins.datasets.textfile import TextFileOptions, load_textfile
    from tlbench.train.data import prepare

    rows = [("text", "label")] + [(f"message {i % 30}", "spam" if i % 2 else "ham") for i in range(120)]
    data = tmp_path / "dups.csv"
    with data.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    loaded = load_textfile(TextFileOptions(path=str(data)))
    with pytest.warns(UserWarning, match=r"dups: exact duplicates: \d+ cross-split copies dropped"):
        splits = prepare(loaded, True, "dups")
    assert not set(splits["train"].inputs) & set(splits["test"].inputs)
    assert not set(splits["val"].inputs) & set(splits["test"].inputs)
    with pytest.warns(UserWarning, match="kept \\(dedupe = false"):
        kept = prepare(loaded, False, "dups")
    assert len(kept["train"]) > len(splits["train"])
