"""Text datasets: the user's files (CSV / TSV / JSONL / Parquet, hf_text on local files), their
one-line errors, and the real offline tasks and shift pair."""
import json

import pandas as pd
import pytest
import torch

from tlbench.train import data as data_mod
from tlbench.builtins.datasets import text_sets, textfile
from tlbench.contract.errors import UserError
from tlbench.modalities import text

from helpers import text_cells

ROWS = text_cells.sentences(60)


def frame(rows=ROWS, **extra):
    df = pd.DataFrame(rows, columns=["text", "label"])
    for k, v in extra.items():
        df[k] = v
    return df


def load(path, **kw):
    return textfile.load_textfile(textfile.TextFileOptions(path=str(path), **kw))


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl", "parquet"])
def test_textfile_reads_every_format_the_same(tmp_path, suffix):
    path = tmp_path / f"data.{suffix}"
    df = frame()
    if suffix == "csv":
        df.to_csv(path, index=False)
    elif suffix == "tsv":
        df.to_csv(path, index=False, sep="\t")
    elif suffix == "jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    loaded = load(path)
    assert loaded.classes == ["neg", "pos"] and loaded.target is None
    split = loaded.source["all"]
    assert split.inputs == [t for t, _ in ROWS]
    assert split.labels.tolist() == [1 if lab == "pos" else 0 for _, lab in ROWS]
    parts = data_mod.prepare(loaded)
    assert sum(len(s) for s in parts.values()) == 60 and isinstance(parts["train"].inputs, list)


def test_textfile_text_that_looks_like_missing_stays_text(tmp_path):
    path = tmp_path / "na.csv"
    frame([("NA", "a"), ("null", "b"), ("fine", "a")]).to_csv(path, index=False)
    assert load(path).source["all"].inputs == ["NA", "null", "fine"]


def test_split_column_domain_pair_and_max_per_class(tmp_path):
    path = tmp_path / "pair.csv"
    rows = ROWS + ROWS
    frame(rows, domain=["a"] * 60 + ["b"] * 60,
          split=(["train"] * 40 + ["validation"] * 10 + ["test"] * 10) * 2).to_csv(path, index=False)
    loaded = textfile.load_textfile(textfile.TextFileShiftOptions(
        path=str(path), domain_column="domain", source="a", target="b", split_column="split", max_per_class=15))
    assert set(loaded.source) == set(loaded.target) == {"train", "val", "test"}
    assert [len(loaded.source[k]) for k in ("train", "val", "test")] == [30, 10, 10]
    assert torch.bincount(loaded.source["train"].labels).tolist() == [15, 15]
    again = textfile.load_textfile(textfile.TextFileShiftOptions(
        path=str(path), domain_column="domain", source="a", target="b", split_column="split", max_per_class=15))
    assert again.source["train"].inputs == loaded.source["train"].inputs  # a fixed draw
    with pytest.raises(UserError, match=r"target = 'c' is not a value of column 'domain'; values present: a, b"):
        textfile.load_textfile(textfile.TextFileShiftOptions(path=str(path), domain_column="domain",
                                                             source="a", target="c"))


def one_line(exc_info, *needles):
    message = str(exc_info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_bad_files_are_one_line_errors_naming_file_row_or_column(tmp_path):
    path = tmp_path / "d.csv"
    frame().rename(columns={"label": "labels"}).to_csv(path, index=False)
    with pytest.raises(UserError) as err:
        load(path)
    one_line(err, str(path), "no column 'label' (label_column)", "did you mean 'labels'", "columns present: text, labels")

    frame(label=["pos"] * 60).to_csv(path, index=False)
    with pytest.raises(UserError) as err:
        load(path)
    one_line(err, str(path), "label column 'label' has only 'pos'", "at least two classes")

    bad = list(ROWS)
    bad[6] = ("   ", "pos")
    frame(bad).to_csv(path, index=False)
    with pytest.raises(UserError) as err:
        load(path)
    one_line(err, str(path), "row 7", "is empty")

    jsonl = tmp_path / "d.jsonl"
    lines = [{"text": t, "label": lab} for t, lab in ROWS]
    lines[3]["text"] = 42
    lines[9]["text"] = ""
    jsonl.write_text("\n".join(json.dumps(x) for x in lines))
    with pytest.raises(UserError) as err:
        load(jsonl)
    one_line(err, str(jsonl), "row 4", "not text (int 42)")
    lines[3]["text"] = "ok"
    jsonl.write_text("\n".join(json.dumps(x) for x in lines))
    with pytest.raises(UserError) as err:
        load(jsonl)
    one_line(err, str(jsonl), "row 10", "is empty")

    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\xe9 au lait,a\nthe end,b\n".encode("latin-1"))
    with pytest.raises(UserError) as err:
        load(latin)
    one_line(err, str(latin), "is not utf-8", 'encoding = "latin-1"')
    assert load(latin, encoding="latin-1").source["all"].inputs[0] == "caf\xe9 au lait"

    with pytest.raises(UserError) as err:
        load(tmp_path / "missing.csv")
    one_line(err, "missing.csv", "does not exist")
    frame(split=["train"] * 60).to_csv(path, index=False)
    with pytest.raises(UserError) as err:
        load(path, split_column="split")
    one_line(err, "split column 'split' gives ['train']", "needs train and test")


def test_hf_text_loads_local_files_through_datasets(tmp_path):
    pytest.importorskip("datasets")
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    frame(ROWS[:40]).to_csv(train, index=False)
    frame(ROWS[40:]).to_csv(test, index=False)
    options = textfile.HfTextOptions(name="csv", data_files={"train": str(train), "test": str(test)})
    loaded = textfile.load_hf(options)
    assert loaded.classes == ["neg", "pos"] and set(loaded.source) == {"train", "test"}
    assert loaded.source["test"].inputs == [t for t, _ in ROWS[40:]]
    assert set(data_mod.prepare(loaded)) == {"train", "val", "test"}
    with pytest.raises(UserError) as err:
        textfile.load_hf(options.model_copy(update={"text_column": "sentence"}))
    one_line(err, "hf_text csv", "no column 'sentence' (text_column)", "columns present: text, label")


def test_hf_text_unknown_dataset_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(text, "hub_reachable", lambda: False)
    with pytest.raises(UserError) as err:
        textfile.load_hf(textfile.HfTextOptions(name="someone/no-such-set"))
    one_line(err, "hf_text someone/no-such-set", "needs the hub")


@pytest.mark.parametrize("name, size, classes", [
    ("sms_spam", 4837, ["ham", "spam"]),
    ("trec", 5381, ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]),
    ("bbc_news", 2225, ["business", "entertainment", "politics", "sports", "tech"]),
])
def test_real_text_tasks(name, size, classes):
    plugin = {p.name: p for p in text_sets.tlbench_datasets()}[name]
    assert plugin.modality == "text"
    loaded = plugin.load(text_sets.TextSetOptions())
    split = loaded.source["all"]
    assert loaded.classes == classes and len(split) == size
    assert all(isinstance(t, str) and t.strip() for t in split.inputs)
    small = plugin.load(text_sets.TextSetOptions(max_per_class=50))
    assert torch.bincount(small.source["all"].labels).tolist() == [50] * len(classes)


def test_vader_shift_pair_movies_to_tweets():
    plugin = {p.name: p for p in text_sets.tlbench_datasets()}["vader_shift"]
    assert plugin.has_target_domain
    loaded = plugin.load(text_sets.VaderShiftOptions())
    assert loaded.classes == ["negative", "positive"]
    assert torch.bincount(loaded.source["all"].labels).tolist() == [5326, 5242]   # movie snippets
    assert torch.bincount(loaded.target["all"].labels).tolist() == [1299, 2897]   # tweets
    with pytest.raises(UserError, match="use one of tweets, movies, amazon, nyt"):
        plugin.load(text_sets.VaderShiftOptions(target="reddit"))
