"""Hooks are called through the host (pluggy's hook caller): wrappers work, a raising hook is named, a
name two plugins register stays reachable by its qualified names, scorers are listed."""
import textwrap
import warnings

import pluggy
import pytest

from conftest import TINY
from tlbench.contract.errors import UserError
from tlbench.plugins.host import Host
from tlbench.plugins.loading import plugin_manager
from tlbench.plugins.registry import DuplicateName

WRAPPER = '''
import tlbench
from tlbench.builtins.strategies import finetune

@tlbench.hookimpl(wrapper=True)
def tlbench_strategies():
    results = yield
    kept = [[r for r in records if r.name != "scratch"] for records in results]
    extra = tlbench.StrategyPlugin("finetune_again", "finetune, registered by a wrapper", finetune.FinetuneOptions,
                                   finetune.run)
    return kept + [[extra]]
'''

OLD_STYLE_WRAPPER = '''
import pluggy
import tlbench

@tlbench.hookimpl(hookwrapper=True)
def tlbench_datasets():
    outcome = yield
    outcome.force_result([[r for r in records if r.name == "digits"] for records in outcome.get_result()])
'''

RAISING = '''
import tlbench

@tlbench.hookimpl
def tlbench_datasets():
    raise RuntimeError("dataset server is down")
'''

DUPLICATE = '''
import tlbench
from tlbench.builtins.datasets import digits

@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin("digits", "my own digits", digits.DigitsOptions, digits.load)]
'''

SCORER = '''
import numpy as np
import tlbench

def class_separation(features, labels, source_logits):
    return float(np.linalg.norm(features.mean(0)))

@tlbench.hookimpl
def tlbench_scorers():
    return [tlbench.ScorerPlugin("separation", "norm of the mean feature (a toy score)", class_separation)]
'''


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Write an importable plugin module; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, text: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
        return name
    return write


def test_wrapper_hookimpl_filters_and_adds_records_in_list(cli, module):
    name = module("wrapping_plugin", WRAPPER)
    result = cli("list", "strategies", "--plugin", name)
    assert result.exit_code == 0, result.output
    assert "finetune_again" in result.stdout and f"({name})" in result.stdout  # credited to the wrapper
    assert "  scratch" not in result.stdout  # filtered out of another plugin's records
    assert "linear_probe" in result.stdout and "(linear_probe)" in result.stdout  # the others keep their source


def test_wrapper_sees_what_pluggy_would_give_it(module):
    pm, _ = plugin_manager([module("wrapping_plugin2", WRAPPER)])
    registry = Host(pm).registry
    assert "scratch" not in registry.records["strategy"]
    assert registry.sources["strategy"]["finetune_again"] == "wrapping_plugin2"
    assert registry.sources["strategy"]["lora"] == "lora"
    # the same filter, called the ordinary way (pm.hook) gives the same names
    direct = {r.name for records in pm.hook.tlbench_strategies() for r in records}
    assert direct == set(registry.records["strategy"])


def test_old_style_hookwrapper_works(module):
    pm, _ = plugin_manager([module("old_wrapper", OLD_STYLE_WRAPPER)])
    registry = Host(pm).registry
    assert list(registry.records["dataset"]) == ["digits"]
    assert registry.sources["dataset"]["digits"] == "digits"


def test_raising_hook_is_named_in_a_warning_and_the_rest_works(cli, module):
    name = module("broken_datasets", RAISING)
    result = cli("list", "datasets", "--plugin", name)
    assert result.exit_code == 0, result.output
    assert f"plugin '{name}' failed in tlbench_datasets: RuntimeError: dataset server is down" in result.stderr
    assert "digits" in result.stdout


def test_raising_hook_is_an_error_with_strict_plugins(cli, module):
    name = module("broken_datasets2", RAISING)
    result = cli("list", "--plugin", name, "--strict-plugins")
    assert result.exit_code == 2
    assert f"plugin '{name}' failed in tlbench_datasets" in result.stderr


def test_a_name_two_plugins_register_stays_reachable_by_its_qualified_names(cli, module, write_suite):
    name = module("dup_digits", DUPLICATE)
    listed = cli("list", "datasets", "--plugin", name)
    assert listed.exit_code == 0, listed.output
    for qualified in (f"{name}:digits", "tlbench:digits"):
        assert f"{qualified}  " in listed.stdout and f"name it '{qualified}'" in listed.stdout
    registry = Host(plugin_manager([name])[0]).registry
    assert registry.get("dataset", f"{name}:digits").help == "my own digits"
    assert registry.get("dataset", "tlbench:digits").help != "my own digits"
    assert registry.get("dataset", "mnist") is registry.get("dataset", "tlbench:mnist")  # the rest: as before
    with pytest.raises(UserError, match=f"dataset 'digits' is registered twice .*\"{name}:digits\""):
        registry.get("dataset", "digits")
    suite = write_suite(TINY.replace('plugin = "digits"', 'plugin = "tlbench:digits"'))
    planned = cli("run", suite, "--plugin", name, "--dry-run")
    assert planned.exit_code == 0, planned.output
    assert " digits " in planned.stdout  # the label stays the record's name


def test_one_plugin_registering_a_name_twice_is_an_error_naming_it(module):
    name = module("twice_digits", DUPLICATE.replace("return [", "return [tlbench.DatasetPlugin(\"digits\", "
                                                     "\"again\", digits.DigitsOptions, digits.load), "))
    with pytest.raises(DuplicateName, match=f"registered twice by plugin '{name}'"):
        Host(plugin_manager([name])[0]).registry


def test_scorers_are_collected_and_listed(cli, module):
    name = module("toy_scorer", SCORER)
    result = cli("list", "scorers", "--plugin", name)
    assert result.exit_code == 0, result.output
    assert "separation" in result.stdout and f"({name})" in result.stdout


def test_a_lifecycle_hook_calls_each_plugin_and_names_the_one_that_fails():
    seen = []

    class Good:
        @pluggy.HookimplMarker("tlbench")
        def tlbench_cell_started(self, cell):
            seen.append(cell)

    class Bad:
        @pluggy.HookimplMarker("tlbench")
        def tlbench_cell_started(self, cell):
            raise ValueError("tracker unreachable")

    pm, _ = plugin_manager()
    pm.register(Bad(), name="bad_tracker")
    pm.register(Good(), name="good_tracker")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Host(pm).cell_started("c1")
    assert seen == ["c1"]
    assert [str(w.message) for w in caught] == [
        "plugin 'bad_tracker' failed in tlbench_cell_started: ValueError: tracker unreachable"]


TYPO_MODALITY = '''
import tlbench
from tlbench.builtins.datasets import digits

@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin("digits_typo", "digits with a misspelt modality", digits.DigitsOptions,
                                  digits.load, modality="imgae")]
'''


def test_an_undeclared_modality_is_one_line_naming_the_plugin_and_a_declared_one_works(cli, module, write_suite):
    from tlbench.modalities import modality
    name = module("typo_modality", TYPO_MODALITY)
    suite = write_suite(TINY.replace('plugin = "digits"', 'plugin = "digits_typo"'))
    result = cli("run", suite, "--plugin", name, "--dry-run")
    assert result.exit_code == 2
    assert "dataset plugin 'digits_typo': unknown modality 'imgae'; registered: image, text" in result.stderr
    modality.register(modality.Modality("imgae", "images, spelt otherwise", modality.get("image").example,
                                        modality.get("image").join))
    try:
        planned = cli("run", suite, "--plugin", name, "--dry-run")
        assert planned.exit_code == 0, planned.output
        assert "12 skipped" in planned.stdout  # backbone (image) and dataset (imgae) differ: skipped
        assert modality.get("imgae").example(2, 8).shape == (2, 3, 8, 8)
    finally:
        del modality._MODALITIES["imgae"]
