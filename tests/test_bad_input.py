"""Bad input that used to end in a traceback: one line on stderr naming the file, key or plugin,
exit 2, nothing trained and nothing overwritten."""
from __future__ import annotations

import sqlite3

import pytest

from conftest import TINY
from test_suite_errors import assert_user_error


def test_suite_file_not_utf8(write_suite, cli, tmp_path):
    path = tmp_path / "suite.toml"
    path.write_bytes(TINY.encode("utf-8").replace(b'"tiny"', b'"t\xe9ny"'))
    assert_user_error(cli("run", path, "--dry-run"), "suite.toml", "not UTF-8")


@pytest.mark.parametrize("change, fragments", [
    # a label that is not a string
    (('plugin = "finetune"', 'plugin = "finetune"\nlabel = 3'),
     ["[[strategy]] #1", "label", "string"]),
    (('plugin = "digits"', 'plugin = "digits"\nlabel = ["a"]'), ["[[dataset]] #1", "label", "string"]),
    (('plugin = "finetune"', 'plugin = "finetune"\nlabel = ""'), ["[[strategy]] #1", "label", "empty"]),
    # a plugin name that is not a string
    (('plugin = "digits"', "plugin = 3"), ["[[dataset]] #1", "plugin", "string"]),
])
def test_wrong_value_types(write_suite, cli, change, fragments):
    old, new = change
    assert old in TINY
    assert_user_error(cli("run", write_suite(TINY.replace(old, new, 1)), "--dry-run"), "suite.toml", *fragments)




@pytest.mark.parametrize("text, fragments", [
    # a list (or a scalar) where an array of tables is expected
    # (top-level keys come first in TOML: before [suite])
    ("backbone = [1]\n" + TINY.replace('[[backbone]]\nplugin = "tiny_cnn"\nwidth = 8\ninput_size = 8\n', ""),
     ["[[backbone]] #1", "must be a table"]),
    ('dataset = ["digits"]\n' + TINY.replace('[[dataset]]\nplugin = "digits"\nimage_size = 8\n', ""),
     ["[[dataset]] #1", "must be a table"]),
    # a list or a scalar where a table is expected
    ("train = [1]\n" + TINY.replace("[train]\nepochs = 1\nmin_steps = 3\nbatch_size = 256\n", ""),
     ["[train]", "must be a table"]),
    (TINY.replace("[train]\nepochs = 1\nmin_steps = 3\nbatch_size = 256\n", "[[train]]\nepochs = 1\n"),
     ["[train]", "must be a table"]),
    ('executor = ["cpu"]\n' + TINY, ["[executor]", "must be a table"]),
    ('suite = [1]\n' + TINY.split("[suite]")[1].split("\n", 5)[-1], ["[suite]", "must be a table"]),
    ('suite = "tiny"\n' + TINY.split("[suite]")[1].split("\n", 5)[-1], ["[suite]", "must be a table"]),
])
def test_wrong_shapes_for_every_section(write_suite, cli, text, fragments):
    assert_user_error(cli("run", write_suite(text), "--dry-run"), "suite.toml", *fragments)


def test_negative_seed(write_suite, cli):
    path = write_suite(TINY.replace("seeds = [0, 1]", "seeds = [0, -1]"))
    assert_user_error(cli("run", path, "--dry-run"), "[suite].seeds", "greater than or equal to 0")


def test_plugin_module_already_installed(write_suite, cli):
    result = cli("run", write_suite(), "--dry-run", "--plugin", "tlbench.builtins.strategies.finetune")
    assert_user_error(result, "--plugin tlbench.builtins.strategies.finetune", "already loaded", "'finetune'")


def test_output_under_a_regular_file(write_suite, cli, tmp_path):
    (tmp_path / "afile").write_text("keep me")
    assert_user_error(cli("run", write_suite(), "--output", tmp_path / "afile" / "out"),
                      "afile", "cannot create the results folder")
    assert (tmp_path / "afile").read_text() == "keep me"


def test_store_that_is_not_sqlite(write_suite, cli, tmp_path):
    folder = tmp_path / "results" / "tiny"
    folder.mkdir(parents=True)
    (folder / "tlbench.sqlite").write_bytes(b"these are my notes, not a database" * 100)
    for args in (("run", write_suite()), ("run", write_suite(), "--dry-run"), ("report", folder)):
        assert_user_error(cli(*args), "tlbench.sqlite", "not a tlbench results store", "--output", "delete")
    assert (folder / "tlbench.sqlite").read_bytes().startswith(b"these are my notes")


def test_sqlite_database_of_something_else(write_suite, cli, tmp_path):
    folder = tmp_path / "results" / "tiny"
    folder.mkdir(parents=True)
    db = sqlite3.connect(folder / "tlbench.sqlite")
    db.execute("CREATE TABLE invoices (id INTEGER)")
    db.commit()
    db.close()
    assert_user_error(cli("run", write_suite()), "tlbench.sqlite", "not a tlbench results store")
    tables = sqlite3.connect(folder / "tlbench.sqlite").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("invoices",)]


def test_store_of_another_schema_version(write_suite, cli, tmp_path):
    from tlbench.contract.results import CellRecord
    from tlbench.run.store import SCHEMA_VERSION, Store
    folder = tmp_path / "results" / "tiny"
    store = Store(folder)
    assert store.meta("schema_version") == SCHEMA_VERSION  # written on creation
    store.set_meta("schema_version", SCHEMA_VERSION + 1)
    store.put(CellRecord(cell_id="x", status="ok"))
    store.close()
    for args in (("run", write_suite()), ("report", folder)):
        assert_user_error(cli(*args), "tlbench.sqlite", f"schema version {SCHEMA_VERSION + 1}",
                          f"version {SCHEMA_VERSION}", "--output", "delete")
    again = sqlite3.connect(folder / "tlbench.sqlite")
    assert again.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == \
        (str(SCHEMA_VERSION + 1),)
    assert again.execute("SELECT count(*) FROM records").fetchone() == (1,)
