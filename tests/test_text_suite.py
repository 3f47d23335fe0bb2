"""`tlbench run` on a tiny text suite: a 2-layer random BERT from a local directory, a generated
textfile and a two-domain textfile_shift, every strategy -> every cell ok; tokenisation runs once
per dataset split, not once per cell."""
import csv

import pytest

from tlbench.modalities.text import Tokenize

from helpers import text_cells

SUITE = """
[suite]
name = "tiny-text"
seeds = [0, 1]
label_fractions = [0.5, 1.0]

[[backbone]]
plugin = "transformers"
model = "{bert}"
max_length = 16

[[dataset]]
plugin = "textfile"
path = "{single}"

[[dataset]]
plugin = "textfile_shift"
label = "reviews2tweets"
path = "{pair}"
domain_column = "domain"
source = "reviews"
target = "tweets"

[[strategy]]
plugin = "linear_probe"
C = 1.0

[[strategy]]
plugin = "finetune"
lr = 3e-3

[[strategy]]
plugin = "partial_finetune"
k = 1
lr = 3e-3

[[strategy]]
plugin = "lora"
r = 2
lr = 1e-2

[[strategy]]
plugin = "scratch"
lr = 3e-3

[[strategy]]
plugin = "dann"
lr = 3e-3
hidden = 16

[train]
epochs = 1
min_steps = 2
batch_size = 16
eval_batch_size = 64
"""


@pytest.fixture
def calls(monkeypatch):
    """Every call of a Tokenize encoder: (key, number of texts)."""
    seen = []
    original = Tokenize.__call__

    def counting(self, texts):
        seen.append((self.key, sum(map(len, texts.values())) if isinstance(texts, dict) else len(texts)))
        return original(self, texts)
    monkeypatch.setattr(Tokenize, "__call__", counting)
    return seen


def test_text_suite_every_strategy_ok_and_tokenised_once_per_dataset(write_suite, cli, tmp_path, calls):
    bert = text_cells.tiny_bert(tmp_path / "bert")
    single = text_cells.write_csv(tmp_path / "texts.csv", n=60)
    pair = text_cells.write_csv(tmp_path / "pair.csv", n=60, domains=True)
    path = write_suite(SUITE.format(bert=bert, single=single, pair=pair))
    result = cli("run", path, "--no-report")
    assert result.exit_code == 0, result.output
    with open(path.parent / "results/tiny-text/results.csv") as f:
        rows = list(csv.DictReader(f))
    status = {(r["dataset"], r["strategy"]): set() for r in rows}
    for r in rows:
        status[(r["dataset"], r["strategy"])].add(r["status"])
    for strategy in ("linear_probe", "finetune", "partial_finetune", "lora", "scratch"):
        assert status[("textfile", strategy)] == {"ok"}, strategy
        assert status[("reviews2tweets", strategy)] == {"ok"}, strategy
    assert status[("reviews2tweets", "dann")] == {"ok"}
    assert status[("textfile", "dann")] == {"skipped"}  # no target domain
    trained = [r for r in rows if r["status"] == "ok"]
    assert len(trained) == 2 * 2 * (5 + 5) + 2 * 2  # seeds x fractions x strategies x datasets + dann
    for r in trained:
        assert 0.0 <= float(r["test_acc"]) <= 1.0
    # tokenised once per dataset (all its splits in one call), however many cells use them
    assert len(calls) == 2, calls
    assert sum(n for _, n in calls) == 60 + 2 * 60
    assert len({key for key, _ in calls}) == 1 and calls[0][0].endswith("max_length=16")
