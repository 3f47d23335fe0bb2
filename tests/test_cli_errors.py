"""Bad input through the command line, as a user meets it: `tlbench run` and `--dry-run`, with the
`inprocess` and `local` executors, stop with exit status 2 and one `error:` line naming the file
and key, before anything trains, with the results store unchanged. A user error that only a cell
can see stops that dataset's cells (not recorded as failures) and the run ends with exit 2."""
import os
import sqlite3
import subprocess
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tlbench.run.store import Store

PLUGINS = "tests.helpers.preflight_plugins"

IMAGES = """
[[backbone]]
plugin = "tiny_cnn"
width = 4
input_size = 8

[[dataset]]
plugin = "imagefolder"
root = "{root}"
image_size = 8
"""

TEXT = """
[[backbone]]
plugin = "chars"

[[dataset]]
plugin = "textfile"
path = "{path}"
{extra}
"""

WEIGHTS = """
[[backbone]]
plugin = "mobilenetv2"
weights = "{path}"
input_size = 32

[[dataset]]
plugin = "digits"
image_size = 8
"""

HEAD = """
[suite]
name = "bad"
seeds = [0]
label_fractions = [1.0]
output = "{output}"

[[strategy]]
plugin = "witness"

[train]
epochs = 1
batch_size = 64
"""


def _images(root: Path, classes: dict[str, int], corrupt: str | None = None) -> Path:
    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    if corrupt:
        (root / corrupt).write_bytes(b"this is not a png")
    return root


def _csv(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


ROWS = b"text,verdict\n" + b"".join(b"good %d,pos\nbad %d,neg\n" % (i, i) for i in range(10))


def case_misspelled_column(tmp):
    return TEXT.format(path=_csv(tmp / "reviews.csv", ROWS), extra='label_column = "verdikt"'), \
        ["reviews.csv", "'verdikt'", "label_column", "did you mean 'verdict'"]


def case_not_utf8(tmp):
    return TEXT.format(path=_csv(tmp / "latin.csv", ROWS.replace(b"good 3", b"caf\xe9 3")),
                       extra='label_column = "verdict"'), ["latin.csv", "not utf-8", "encoding"]


def case_corrupt_image(tmp):
    root = _images(tmp / "photos", {"cats": 6, "dogs": 6}, corrupt="dogs/broken.png")
    return IMAGES.format(root=root), ["broken.png", "cannot read image"]


def case_empty_class_folder(tmp):
    root = _images(tmp / "photos", {"cats": 6, "dogs": 6})
    (root / "birds").mkdir()
    return IMAGES.format(root=root), ["birds", "has no images"]


def case_missing_weights(tmp):
    return WEIGHTS.format(path=tmp / "weights" / "mobilenet.pth"), ["mobilenet.pth", "does not exist"]


def case_unknown_strategy(tmp):
    return IMAGES.format(root=_images(tmp / "photos", {"a": 2, "b": 2})).replace(
        '[[dataset]]', '[[strategy]]\nplugin = "finetun"\n\n[[dataset]]'), ["'finetun'", "did you mean 'finetune'"]


def case_unchecked_plugin(tmp):  # a plugin without a check is checked by its first load
    return '[[backbone]]\nplugin = "tiny_cnn"\n\n[[dataset]]\nplugin = "unchecked"\n', \
        ["unchecked: data/images.bin: no images"]


CASES = [case_misspelled_column, case_not_utf8, case_corrupt_image, case_empty_class_folder, case_missing_weights,
         case_unknown_strategy, case_unchecked_plugin]


def snapshot(directory: Path) -> dict:
    """Every row of every table of the store."""
    db = sqlite3.connect(directory / "tlbench.sqlite")
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(map(repr, db.execute(f"SELECT * FROM {t}"))) for t in tables}
    finally:
        db.close()


def stored(directory: Path) -> list:
    store = Store(directory)
    try:
        return store.records()
    finally:
        store.close()


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning: ")]


@pytest.fixture
def bad_suite(tmp_path, monkeypatch):
    """A suite file for one case, beside an existing store of that suite (one marker in its meta)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TLBENCH_WITNESS", str(tmp_path))

    def make(case):
        body, fragments = case(tmp_path)
        path = tmp_path / "suite.toml"
        path.write_text(textwrap.dedent(HEAD.format(output=tmp_path / "results")) + textwrap.dedent(body))
        store = Store(tmp_path / "results" / "bad")
        store.set_meta("marker", "before")
        store.close()
        return path, fragments
    return make


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("executor", ["inprocess", "local"])
@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_trained_store_unchanged(bad_suite, cli, tmp_path, case, executor,
                                                                      dry_run):
    suite, fragments = bad_suite(case)
    before = snapshot(tmp_path / "results" / "bad")
    args = ["run", suite, "--executor", executor, "--plugin", PLUGINS] + (["--dry-run"] if dry_run else [])
    result = cli(*args)
    lines = error_lines(result)
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), lines[0]
    assert not list(tmp_path.glob("trained-*")), "a cell trained"
    assert "to run" not in result.stdout  # neither the plan nor the run's start was printed
    assert snapshot(tmp_path / "results" / "bad") == before


def case_good_then_corrupt_images(tmp):  # the digits would be extracted and stored before the photos fail
    body, fragments = case_corrupt_image(tmp)
    return body.replace("[[dataset]]", '[[dataset]]\nplugin = "digits"\nimage_size = 8\n\n[[dataset]]', 1), fragments


@pytest.mark.parametrize("case", [case_good_then_corrupt_images, case_missing_weights],
                         ids=["good_then_corrupt_images", "missing_weights"])
def test_rank_checks_its_data_and_weights_first(bad_suite, cli, tmp_path, case):
    suite, fragments = bad_suite(case)
    before = snapshot(tmp_path / "results" / "bad")
    result = cli("rank", suite, "--plugin", PLUGINS)
    lines = error_lines(result)
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert all(fragment.lower() in lines[0].lower() for fragment in fragments), lines[0]
    assert snapshot(tmp_path / "results" / "bad") == before
    assert not list((tmp_path / "results" / "bad").glob("features/*")), "features were extracted"
    assert not (tmp_path / "results" / "bad" / "rank.csv").exists()


def test_a_fresh_run_with_bad_data_makes_no_results_folder(bad_suite, cli, tmp_path):
    import shutil
    suite, _ = bad_suite(case_corrupt_image)
    shutil.rmtree(tmp_path / "results")
    for extra in ([], ["--dry-run"]):
        assert cli("run", suite, "--plugin", PLUGINS, *extra).exit_code == 2
    assert not (tmp_path / "results").exists()


def test_dry_run_ok_means_the_run_starts(bad_suite, cli, tmp_path):
    suite, _ = bad_suite(case_empty_class_folder)
    for i in range(6):
        Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(tmp_path / "photos" / "birds" / f"{i}.png")
    dry = cli("run", suite, "--plugin", PLUGINS, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "preflight ok: 1 dataset, 1 backbone checked" in dry.stdout
    assert not list(tmp_path.glob("trained-*"))
    result = cli("run", suite, "--plugin", PLUGINS, "--no-report")
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("trained-*"))) == 1


LATE = """
[[backbone]]
plugin = "tiny_cnn"
width = 4
input_size = 8

[[dataset]]
plugin = "late_failure"

[[dataset]]
plugin = "digits"
image_size = 8
"""


@pytest.mark.parametrize("executor", ["inprocess", "local"])
def test_a_user_error_inside_a_cell_stops_its_dataset_and_exits_2(bad_suite, cli, tmp_path, executor):
    suite, _ = bad_suite(lambda tmp: (LATE, []))
    text = suite.read_text().replace("seeds = [0]", "seeds = [0, 1, 2]")
    suite.write_text(text)
    result = cli("run", suite, "--plugin", PLUGINS, "--no-report", "--executor", executor,
                 *(["--executor-option", "workers=1"] if executor == "local" else []))
    lines = error_lines(result)
    assert result.exit_code == 2, result.output
    assert lines == ["error: late_failure: data/test.csv: row 7: label 'x' is not a class of the training split"]
    records = stored(tmp_path / "results" / "bad")
    assert [(r.dataset, r.status) for r in records] == [("digits", "ok")] * 3  # the failing dataset's: no records
    assert len(list(tmp_path.glob("trained-*"))) == 3


def test_each_distinct_dataset_and_backbone_is_checked_once_before_the_cells(bad_suite, cli, tmp_path):
    body = '[[backbone]]\nplugin = "tiny_cnn"\nwidth = [4, 6]\ninput_size = 8\n\n[[dataset]]\nplugin = "counting"\n'
    suite, _ = bad_suite(lambda tmp: (body, []))
    suite.write_text(suite.read_text().replace("seeds = [0]", "seeds = [0, 1]"))
    dry = cli("run", suite, "--plugin", PLUGINS, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "1 dataset, 2 backbones checked (1 by loading: no check)" in dry.stdout
    assert len(list(tmp_path.glob("loaded-*"))) == 1  # a dataset without a check: loaded once
    assert not list(tmp_path.glob("trained-*"))


@pytest.fixture(autouse=True)
def _no_mlflow(monkeypatch):
    monkeypatch.setenv("TLBENCH_MLFLOW", os.environ.get("TLBENCH_MLFLOW", "0"))


FAULT = """
[suite]
name = "faults"
seeds = [0, 1, 2, 3]
output = "{output}"

[[backbone]]
plugin = "tiny_cnn"
width = 4
input_size = 8

[[dataset]]
plugin = "digits"
image_size = 8

[[strategy]]
plugin = "{strategy}"

[train]
epochs = 1
batch_size = 256
"""


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs (needs root and mount; skipped where the machine does not allow it)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_results_folder_that_fills_up_ends_the_run_in_one_line_and_the_next_run_resumes(small_disk, tmp_path, cli,
                                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TLBENCH_FAULT_AT", str(small_disk))
    monkeypatch.setattr("tlbench.run.runner.LEASE_SECONDS", 1.0)  # the claim the fault left behind expires soon
    (tmp_path / "suite.toml").write_text(FAULT.format(output=small_disk, strategy="fault"))
    result = cli("run", "suite.toml", "--plugin", PLUGINS, "--no-report")
    lines = error_lines(result)
    assert result.exit_code == 1, result.output
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {small_disk / 'faults'}: cannot write the results store "
                               "(database or disk is full)"), lines[0]
    assert "run the same command again to resume" in lines[0]
    assert [r.status for r in stored(small_disk / "faults")] == ["ok"]  # the cell before the fault, readable
    (small_disk / "filler").unlink()
    time.sleep(1.1)
    again = cli("run", "suite.toml", "--plugin", PLUGINS, "--no-report")
    assert again.exit_code == 0, again.output
    assert sorted(r.seed for r in stored(small_disk / "faults")) == [0, 1, 2, 3]


def test_a_results_folder_turned_read_only_is_one_line_exit_1(small_disk, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = tmp_path / "suite.toml"
    suite.write_text(FAULT.format(output=small_disk, strategy="witness").replace("seeds = [0, 1, 2, 3]", "seeds = [0]"))
    assert cli("run", suite, "--plugin", PLUGINS, "--no-report").exit_code == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    suite.write_text(suite.read_text().replace("seeds = [0]", "seeds = [0, 1]"))
    for args in ([], ["--dry-run"]):
        result = cli("run", suite, "--plugin", PLUGINS, "--no-report", *args)
        lines = error_lines(result)
        assert len(lines) == 1 and lines[0].startswith(f"error: {small_disk / 'faults'}: cannot open the results "
                                                       "store") and "read-only" in lines[0], result.output
        assert result.exit_code == 1, result.output
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert [r.seed for r in stored(small_disk / "faults")] == [0]  # nothing lost
    assert cli("run", suite, "--plugin", PLUGINS, "--no-report").exit_code == 0
    assert sorted(r.seed for r in stored(small_disk / "faults")) == [0, 1]


def test_the_controller_out_of_memory_is_one_line_exit_1(bad_suite, cli, tmp_path, monkeypatch):
    suite, _ = bad_suite(lambda tmp: ('[[backbone]]\nplugin = "tiny_cnn"\nwidth = 4\ninput_size = 8\n\n'
                                      '[[dataset]]\nplugin = "digits"\nimage_size = 8\n', []))
    suite.write_text(suite.read_text().replace("seeds = [0]", "seeds = [0, 1]"))
    put, calls = Store.put, []

    def put_then_exhaust(self, record):
        calls.append(record.cell_id)
        if len(calls) == 2:
            raise MemoryError
        put(self, record)
    monkeypatch.setattr(Store, "put", put_then_exhaust)
    result = cli("run", suite, "--plugin", PLUGINS, "--no-report")
    lines = error_lines(result)
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "controller ran out of memory" in lines[0] and "run the same command again" in lines[0]
    monkeypatch.setattr(Store, "put", put)
    assert [r.cell_id for r in stored(tmp_path / "results" / "bad")] == calls[:1]
