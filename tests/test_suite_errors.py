"""Every user mistake: one line on stderr naming file and key, exit 2, nothing trained."""
from pathlib import Path

import pytest

from conftest import TINY


def assert_user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning: ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not (result.stdout or "").strip()


@pytest.mark.parametrize("change, fragments", [
    (("[train]", "[train\n"), ["suite.toml", "invalid TOML", "line"]),
    (('plugin = "digits"', 'plugin = "digits"\ncolour = "red"'),
     ["suite.toml", "[[dataset]] #1 (digits).colour", "unknown key", "valid keys: image_size"]),
    (('plugin = "digits"', 'plugin = "digitz"'),
     ["suite.toml", "[[dataset]] #1", "unknown dataset plugin 'digitz'", "did you mean 'digits'", "installed:"]),
    (("epochs = 1", "epochs = 0"), ["suite.toml", "[train].epochs", "greater than 0"]),
    (("epochs = 1", 'epochs = "ten"'), ["[train].epochs", "integer"]),
    (("label_fractions = [0.5, 1.0]", "label_fractions = [0.5, 1.5]"),
     ["[suite].label_fractions", "outside (0, 1]"]),
    (("seeds = [0, 1]", "seeds = []"), ["[suite].seeds", "at least 1"]),
    (("C = [0.1, 1.0]", "C = []"), ["[[strategy]] #2 (linear_probe).C", "empty sweep"]),
    (("[train]", "[training]"), ["unknown section [training]", "valid sections"]),
    (("lr = 3e-3", "lr = -1"), ["[[strategy]] #1 (finetune).lr", "greater than 0"]),
    (("epochs = 1", 'epochs = 1\nstop = "plateau"'), ["[train].stop", "[train] patience > 0"]),
    (("epochs = 1", "epochs = 1\neval_every_epochs = -1"), ["[train].eval_every_epochs", "greater than or equal"]),
    (("[train]", "[budget_check]\nfactor = 1.0\n\n[train]"), ["[budget_check].factor", "greater than 1"]),
    (("[train]", "[budget_check]\nsample = 0\n\n[train]"), ["[budget_check].sample", "greater than 0"]),
    (("[train]", "[budget_check]\nsample = 1.5\n\n[train]"), ["[budget_check].sample", "less than or equal to 1"]),
    (("[train]", "[budget_check]\nfactr = 2\n\n[train]"),
     ["[budget_check].factr", "unknown key", "valid keys: factor, sample"]),
    (("[suite]", "budget_check = 2\n[suite]"), ["[budget_check] must be a table"]),
    (("[train]", '[search]\nmethod = "random"\ntrials = 2\n\n[budget_check]\n\n[train]'),
     ["[budget_check]", "method 'random'", "use method = \"grid\""]),
])
def test_bad_suite_is_one_line_and_exit_2(write_suite, cli, change, fragments):
    old, new = change
    assert old in TINY
    path = write_suite(TINY.replace(old, new, 1))
    assert_user_error(cli("run", path), *fragments)
    assert not (path.parent / "results").exists()


def test_missing_suite_file(write_suite, cli):
    assert_user_error(cli("run", "nope.toml"), "nope.toml", "cannot read")


def test_missing_image_folder_is_caught_before_training(write_suite, cli, tmp_path):
    text = TINY.replace('plugin = "digits"\nimage_size = 8', f'plugin = "imagefolder"\nroot = "{tmp_path}/no-such"')
    assert_user_error(cli("run", write_suite(text)), "suite.toml", "(imagefolder).root", "no-such", "not found")


def test_unknown_plugin_module(write_suite, cli):
    assert_user_error(cli("run", write_suite(), "--plugin", "no_such_module_xyz"), "--plugin no_such_module_xyz")


def test_duplicate_plugin_names_name_both_sources(write_suite, cli):
    # a name two plugins register is an error only where a suite uses it unqualified (issue 16)
    result = cli("run", write_suite(), "--plugin", "helpers.duplicate_plugin")
    assert_user_error(result, "dataset 'digits' is registered twice", "'digits'", "'helpers.duplicate_plugin'",
                      '"tlbench:digits"', '"helpers.duplicate_plugin:digits"')


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.glob("suites/*.toml")), ids=lambda p: p.stem)
def test_every_shipped_suite_loads_and_expands(path):
    from tlbench.plugins.host import load_registry
    from tlbench.plan.suite import load_suite
    suite = load_suite(path, load_registry(()))
    runnable = [cell for cell in suite.cells if not cell.skip_reason]
    assert runnable, f"{path.name}: no cell would run"
