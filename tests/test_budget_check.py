"""The budget-sensitivity check ([budget_check]), the stopping options' place in a cell's id, and
a run that stores ``budget`` and ``stopped``."""
import csv
import math

import pytest
from conftest import TINY

from tlbench.contract.cells import canonical
from tlbench.plugins.host import load_registry
from tlbench.plan.suite import parse_suite
from tlbench.testing import tiny_suite

#: the cell ids of conftest.TINY under tlbench 0.3, before the stopping options existed
TINY_IDS = {"0ac3deae9cdec9b7", "11e16468272b2c10", "390c3a469be5e671", "43ee39fda77b94e0", "500dd606ab892a0b",
            "6a3d2b4b759912de", "8d22a23248bd2fbc", "93b5812d13f35945", "9adfb3c0e99024e1", "9cd8e170becfd429",
            "be428d0ba3f7d787", "c252db7457bbcaff"}
#: the [train] keys of a default cell's configuration under tlbench 0.3
OLD_TRAIN_KEYS = {"augment", "batch_size", "epochs", "eval_batch_size", "eval_every", "keep_best", "label_smoothing",
                  "min_steps", "patience", "precision", "schedule", "steps", "validation", "warmup"}


@pytest.fixture(scope="module")
def registry():
    return load_registry(())


def plan(registry, text):
    return parse_suite(text, "suite.toml", registry).cells


def test_cell_ids_of_existing_suites_do_not_change(registry):
    cells = plan(registry, TINY)
    assert {c.id for c in cells} == TINY_IDS
    assert {set(c.config()["train"]) == OLD_TRAIN_KEYS for c in cells} == {True}
    assert set(cells[0].config()) == {"backbone", "dataset", "strategy", "train", "seed", "label_fraction"}
    # the new options written at their defaults change nothing either
    explicit = TINY.replace("epochs = 1", 'epochs = 1\nstop = "budget"\neval_every_epochs = 0\nbudget = 1.0')
    assert {c.id for c in plan(registry, explicit)} == TINY_IDS


def test_the_stopping_options_are_in_the_id_where_they_are_set(registry):
    plateau = plan(registry, TINY.replace("epochs = 1", 'epochs = 1\nstop = "plateau"\npatience = 3\n'
                                                        "eval_every_epochs = 1"))
    assert not {c.id for c in plateau} & TINY_IDS
    train = plateau[0].config()["train"]
    assert (train["stop"], train["patience"], train["eval_every_epochs"]) == ("plateau", 3, 1.0)
    assert "budget" not in train


def test_the_check_plans_every_cell_of_a_row_again_at_factor_times_the_budget(registry):
    cells = plan(registry, TINY + "\n[budget_check]\nfactor = 2.5\n")
    base, check = cells[:12], cells[12:]
    assert {c.id for c in base} == TINY_IDS and len(check) == 12
    key = lambda c: (c.strategy.label, canonical(c.strategy.variant), c.seed, c.label_fraction)  # noqa: E731
    assert sorted(map(key, check)) == sorted(map(key, base))  # all strategies, variants, seeds
    assert {c.train.budget for c in check} == {2.5}
    assert all('"budget":2.5' in c.variant for c in check) and not {c.id for c in check} & TINY_IDS
    assert {c.config()["train"]["budget"] for c in check} == {2.5}
    assert len({c.id for c in cells}) == 24


def test_rows_are_sampled_by_a_stable_hash_of_the_row(registry):
    fractions = "[" + ", ".join(f"{f / 20:g}" for f in range(1, 21)) + "]"
    text = TINY.replace("label_fractions = [0.5, 1.0]", f"label_fractions = {fractions}")
    checked = lambda cells: {c.label_fraction for c in cells if c.train.budget > 1}  # noqa: E731
    half = checked(plan(registry, text + "\n[budget_check]\nsample = 0.5\n"))
    assert 3 <= len(half) <= 17  # about half of 20 rows
    # the same rows whatever else the suite holds (seeds, strategies)
    other = text.replace("seeds = [0, 1]", "seeds = [7]").replace("C = [0.1, 1.0]", "C = 3.0")
    assert checked(plan(registry, other + "\n[budget_check]\nsample = 0.5\n")) == half
    assert half < checked(plan(registry, text + "\n[budget_check]\nsample = 0.9\n"))
    # every cell of a sampled row is checked, none of another
    cells = plan(registry, text + "\n[budget_check]\nsample = 0.5\n")
    per_row = {f: sum(c.label_fraction == f and c.train.budget > 1 for c in cells) for f in half}
    assert set(per_row.values()) == {6}  # finetune and two probe variants, two seeds


def test_skipped_cells_are_not_checked_and_a_swept_budget_is_planned_once(registry):
    dann = TINY.replace("[train]", '[[strategy]]\nplugin = "dann"\nlr = 1e-3\n\n[train]')
    cells = plan(registry, dann + "\n[budget_check]\n")
    assert sum(bool(c.skip_reason) for c in cells) == 4  # dann without a target domain: not again
    assert len(cells) == 16 + 12
    text = TINY.replace("batch_size = 256", "batch_size = 256\nbudget = [1.0, 2.0]")
    cells = plan(registry, text + "\n[budget_check]\nfactor = 2\n")
    assert len(cells) == len({c.id for c in cells}) == 24 + 12  # budget 1 and 2, and 4 (2's check); 2 once
    assert sorted({c.train.budget for c in cells}) == [1.0, 2.0, 4.0]


def test_a_grid_search_table_with_the_check_is_supported(registry):
    cells = plan(registry, TINY + '\n[search]\nmethod = "grid"\n\n[budget_check]\n')
    assert len(cells) == 24


def test_dry_run_shows_the_check_cells_and_errors_before_anything_runs(write_suite, cli):
    path = write_suite(TINY + "\n[budget_check]\nfactor = 2\nsample = 1.0\n")
    result = cli("run", path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "24 of 24 cells" in result.stdout and '"budget":2.0' in result.stdout.replace(" ", "")
    bad = write_suite(TINY + "\n[budget_check]\nfactor = 0.5\n")
    result = cli("run", bad, "--dry-run")
    assert result.exit_code == 2 and "error: " in result.stderr and "[budget_check].factor" in result.stderr
    assert not (path.parent / "results").exists()


CHECKED = tiny_suite(suite={"name": "checked", "label_fractions": [0.5]},
                     train={"epochs": 3, "batch_size": 128, "stop": "plateau", "patience": 1,
                            "eval_every_epochs": 1},
                     tables={"budget_check": {"factor": 2}})


def test_a_run_stores_the_check_cells_with_budget_and_stopped_and_resumes(write_suite, cli):
    path = write_suite(CHECKED)
    result = cli("run", path, "--no-report")
    assert result.exit_code == 0, result.output
    assert "4 cells, 4 to run" in result.stdout
    with open(path.parent / "results/checked/results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["status"] for r in rows} == {"ok"} and "undertrained" not in rows[0]
    by = {(r["strategy"], float(r["budget"])): r for r in rows}
    assert set(by) == {("finetune", 1.0), ("finetune", 2.0), ("linear_probe", 1.0), ("linear_probe", 2.0)}
    probe, probe2 = by["linear_probe", 1.0], by["linear_probe", 2.0]
    assert probe["stopped"] == probe2["stopped"] == ""  # no training loop
    assert probe["test_acc"] == probe2["test_acc"]  # it simply runs again
    base, doubled = by["finetune", 1.0], by["finetune", 2.0]
    assert base["stopped"] in ("plateau", "cap") and doubled["stopped"] in ("plateau", "cap")
    cap = 3 * math.ceil(float(base["train_examples"]) / 128)  # 3 epochs
    steps = float(base["steps"]), float(doubled["steps"])
    assert steps[0] <= cap and steps[1] <= 2 * cap
    assert (base["stopped"] == "cap") == (steps[0] == cap) and (doubled["stopped"] == "cap") == (steps[1] == 2 * cap)
    again = cli("run", path, "--no-report")
    assert "4 cells, 0 to run" in again.stdout
