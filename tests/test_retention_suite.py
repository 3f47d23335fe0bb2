"""lp_ft, wise_ft, soup and surgical partial_finetune through a suite: bad input is one line and
exit 2 at --dry-run, a tiny run records what they measured, and a search samples their spaces."""
from __future__ import annotations

import pytest
from test_suite_errors import assert_user_error

from tlbench.plan.suite import parse_suite
from tlbench.plugins.host import load_registry
from tlbench.run.store import Store
from tlbench.testing import tiny_suite

STRATEGIES = ({"plugin": "lp_ft", "lr": 3e-3},
              {"plugin": "wise_ft", "alphas": [0.0, 0.5, 1.0], "of_options": {"lr": 3e-3}},
              {"plugin": "soup", "ingredients": {"lr": [1e-3, 3e-3]}, "method": "greedy"},
              {"plugin": "partial_finetune", "blocks": "first", "k": 1, "lr": 3e-3})


def suite_with(strategy: str) -> str:
    """The tiny suite with one [[strategy]] table, given as its TOML lines."""
    return tiny_suite([]) + "\n[[strategy]]\n" + strategy + "\n"


@pytest.mark.parametrize("strategy, fragments", [
    ('plugin = "wise_ft"\nalphas = [0.5, 1.5]', ["[[strategy]] #1 (wise_ft).alphas.1", "less than or equal to 1"]),
    ('plugin = "wise_ft"\nalphas = [-0.1]', ["(wise_ft).alphas.0", "greater than or equal to 0"]),
    ('plugin = "wise_ft"\nof = "lora"', ["[[strategy]] #1 (wise_ft): of = 'lora'",
                                         "does not fine-tune from pretrained weights"]),
    ('plugin = "wise_ft"\nof = "linear_probe"', ["of = 'linear_probe'", "does not fine-tune"]),
    ('plugin = "wise_ft"\nof = "scratch"', ["of = 'scratch'", "does not fine-tune"]),
    ('plugin = "wise_ft"\nof = "finetun"', ["(wise_ft): of: unknown strategy plugin 'finetun'", "did you mean"]),
    ('plugin = "wise_ft"\nof_options = { lrr = 1e-3 }', ["(wise_ft): of_options.lrr: unknown key", "valid keys"]),
    ('plugin = "soup"\nof = "lp_ft"\ningredients = { C = [0.1, 1.0] }',
     ["(soup): ingredients.C", "architecture or initialisation", "must share one"]),
    ('plugin = "soup"\nof = "soup"', ["(soup): of = 'soup'", "does not fine-tune"]),
    ('plugin = "soup"\nmethod = "best"', ["(soup).method", "'uniform' or 'greedy'"]),
    ('plugin = "partial_finetune"\nblocks = [0, -1]', ["(partial_finetune).blocks", "each 0 or more", "[0, -1]"]),
    ('plugin = "partial_finetune"\nblocks = "auto"\nlayer_decay = 0.7',
     ["(partial_finetune)", "leave layer_decay out"]),
    ('plugin = "lp_ft"\nC = 0', ["(lp_ft).C", "greater than 0"]),
])
def test_bad_input_is_one_line_at_dry_run(write_suite, cli, strategy, fragments):
    assert_user_error(cli("run", write_suite(suite_with(strategy)), "--dry-run"), "suite.toml", *fragments)


def test_a_tiny_run_records_what_they_measured(write_suite, cli, tmp_path):
    result = cli("run", write_suite(tiny_suite(STRATEGIES, train={"steps": 2, "batch_size": 64})))
    assert result.exit_code == 0, result.output
    records = {r.strategy: r for r in Store(tmp_path / "results" / "kit").records()}
    assert {r.status for r in records.values()} == {"ok"}, {r.strategy: r.error for r in records.values()}
    assert records["wise_ft"].metrics["wise_alpha"] in (0.0, 0.5, 1.0)
    assert "wise_val_acc[alpha=0.5]" in records["wise_ft"].metrics
    assert records["soup"].metrics["soup_size"] in (1.0, 2.0) and records["soup"].steps == 4
    assert "blocks" in records["partial_finetune"].config["strategy"]


def test_a_search_samples_their_spaces():
    strategies = ({"plugin": "lp_ft"}, *STRATEGIES[1:])
    text = tiny_suite(strategies, train={"steps": 2}, tables={"search": {"method": "random", "trials": 2}})
    registry = load_registry()
    suite = parse_suite(text, "suite.toml", registry)
    assert set(suite.search.spaces["lp_ft"]) == {"lr", "weight_decay"}
    assert set(suite.search.spaces["partial_finetune"]) == {"weight_decay"}  # lr fixed by the suite
    assert suite.search.spaces["wise_ft"] == suite.search.spaces["soup"] == {}  # they keep their variants
    [base] = [c for c in suite.cells if c.strategy.label == "lp_ft"]
    trial = base.vary(registry, {"lr": 1e-4}, {})
    assert trial.strategy.options.lr == 1e-4 and trial.id != base.id


def test_a_search_may_not_choose_a_wrapped_strategy_that_does_not_fine_tune(write_suite, cli):
    text = tiny_suite([{"plugin": "wise_ft"}], train={"steps": 2},
                      tables={"search": {"method": "random", "trials": 2},
                              "search.space.wise_ft": {"of": ["lp_ft", "lora"]}})
    assert_user_error(cli("run", write_suite(text), "--dry-run"), "[search].space.wise_ft (wise_ft",
                      "of = 'lora'", "does not fine-tune")


def test_a_list_of_of_options_tables_sweeps_the_wrapped_strategy():
    text = tiny_suite([{"plugin": "wise_ft", "of_options": [{"lr": 1e-3}, {"lr": 3e-3}]}])
    cells = parse_suite(text, "suite.toml", load_registry()).cells
    assert [c.strategy.options.of_options for c in cells] == [{"lr": 1e-3}, {"lr": 3e-3}]
    assert len({c.id for c in cells}) == 2
