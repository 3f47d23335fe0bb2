"""The [search] planner: TPE / random trials as cells, Hyperband rungs, resume, executors, errors."""
from __future__ import annotations

import math
import random

import pytest
from test_executors import ray_cluster  # noqa: F401 (the module's Ray instance, for the ray executor)

from tlbench.run import worker
from tlbench.plugins.host import load_registry
from tlbench.contract.results import CellRecord
from tlbench.run.search import GroupSearch, brackets, groups
from tlbench.contract.space import LogUniform, SearchOptions
from tlbench.run.store import Store
from tlbench.plan.suite import parse_suite

REAL_RUN = worker.Worker.run

SEARCH = """
[suite]
name = "search"
seeds = [0]

[[backbone]]
plugin = "tiny_cnn"
width = 4
input_size = 8

[[dataset]]
plugin = "digits"
image_size = 8

[[strategy]]
plugin = "finetune"
weight_decay = 0.01

[train]
steps = 2
batch_size = 64
eval_batch_size = 1024

[search]
method = "tpe"
trials = 4
parallel = 2
startup_trials = 2
"""


def counting_runs(monkeypatch, stop_after: int | None = None) -> list[str]:
    """Count the cells a worker trains (in this process); raise Ctrl-C before cell ``stop_after + 1``."""
    original, calls = REAL_RUN, []

    def run(self, cell):
        if stop_after is not None and len(calls) == stop_after:
            raise KeyboardInterrupt
        calls.append(cell.id)
        return original(self, cell)
    monkeypatch.setattr(worker.Worker, "run", run)
    return calls


def test_tpe_search_runs_resumes_after_a_kill_on_the_local_executor_and_retrains_nothing(write_suite, cli,
                                                                                          monkeypatch):
    path = write_suite(SEARCH)
    calls = counting_runs(monkeypatch, stop_after=3)  # the second wave is cut after its first trial
    assert cli("run", path, "--no-report").exit_code == 130
    store = Store(path.parent / "results/search")
    before = {r.cell_id: r.finished_at for r in store.records(plan_only=False)}
    assert set(before) == set(calls) and len(calls) == 3
    resumed = cli("run", path, "--no-report", "--executor", "local", "--executor-option", "workers=1")
    assert resumed.exit_code == 0, resumed.output
    records = store.records()
    assert len(records) == 4 and all(r.status == "ok" and r.steps == 2 for r in records)
    assert {r.cell_id: r.finished_at for r in records if r.cell_id in before} == before  # the same asks came
    assert len(store.records(plan_only=False)) == 4  # back: only the lost trial trained, in a worker process
    variants = {r.variant for r in records}
    assert len(variants) == 4 and all('"lr":' in v and "weight_decay" not in v for v in variants)  # fixed: not searched
    assert {r.config["strategy"]["weight_decay"] for r in records} == {0.01}
    (budget,) = store.meta("tuning")
    assert budget["trials"] == 4 and budget["cells"] == 4 and budget["steps"] == 8
    again = counting_runs(monkeypatch)
    assert cli("run", path, "--no-report").exit_code == 0 and again == []  # finished: nothing trains


def test_a_tpe_search_runs_on_the_ray_executor(write_suite, cli, ray_cluster):
    path = write_suite(SEARCH)
    result = cli("run", path, "--no-report", "--executor", "ray", "--executor-option", "threads=1")
    assert result.exit_code == 0, result.output
    records = Store(path.parent / "results/search").records()
    assert len(records) == 4 and all(r.status == "ok" and r.steps == 2 for r in records)
    assert len({r.variant for r in records}) == 4  # four asks of the sampler, in two waves of two actors
    (budget,) = Store(path.parent / "results/search").meta("tuning")
    assert budget["trials"] == 4 and budget["steps"] == 8


@pytest.mark.parametrize("table, message", [
    ('[search]\nmethd = "tpe"', "[search].methd: unknown key; valid keys: method, trials"),
    ('[search]\nmethod = "bayes"', "[search].method: Input should be 'grid', 'random' or 'tpe'"),
    ('[search]\nmethod = "tpe"\n[search.space.finetune]\nlrr = { low = 1e-4, high = 1e-2 }',
     "[search].space.finetune.lrr: unknown parameter of strategy 'finetune'; its options: lr, weight_decay"),
    ('[search]\nmethod = "tpe"\n[search.space.lora]\nlr = [1e-3]', "[search].space.lora: no [[strategy]] has that"),
    ('[search]\nmethod = "tpe"\n[search.space.finetune]\nlr = { low = -1.0, high = 1e-2 }',
     "lr: Input should be greater than 0"),
    ('[search]\nmethod = "tpe"\n[search.space.finetune]\nweight_decay = [[0.1]]',
     "weight_decay: Choice: each value must be a number, a string or a boolean"),
    ('[search]\ntrials = 3', "[search].trials: applies to method \"random\" or \"tpe\", not to \"grid\""),
])
def test_a_bad_search_table_is_a_one_line_error_at_dry_run(write_suite, cli, table, message):
    path = write_suite(SEARCH.split("[search]")[0] + table + "\n")
    result = cli("run", path, "--dry-run")
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_pruning_needs_train_steps(write_suite, cli):
    path = write_suite(SEARCH.replace("steps = 2\n", "epochs = 1\n").replace('[search]\n', '[search]\npruner = "hyperband"\n'))
    result = cli("run", path, "--dry-run")
    assert result.exit_code == 2 and "[search].pruner: 'hyperband' needs the full budget" in result.stderr


def test_hyperband_brackets_follow_li_et_al():
    options = SearchOptions(method="tpe", pruner="hyperband", trials=17, eta=3)
    plan = brackets(options, 27)
    assert [(b.trials, b.budgets) for b in plan] == [(9, (3, 9, 27)), (5, (9, 27)), (3, (27,))]
    halving = brackets(SearchOptions(method="tpe", pruner="halving", trials=9, min_steps=1), 9)
    assert [(b.trials, b.budgets) for b in halving] == [(9, (1, 3, 9))]
    assert [b.trials for b in brackets(SearchOptions(method="tpe", trials=5, parallel=2), None)] == [2, 2, 1]


def drive(search: GroupSearch, value_of, test_of) -> list[list[str]]:
    """Run a group's plan against made-up records: ``val_acc = value_of(lr, steps)``, ``test_acc =
    test_of(lr)``. Returns the waves' cell ids."""
    made: dict[str, CellRecord] = {}
    waves = []
    for wave in search.plan(lambda: made):
        waves.append([c.id for c in wave])
        for c in wave:
            lr, steps = c.strategy.options.lr, c.train.steps
            made[c.id] = CellRecord(cell_id=c.id, status="ok", steps=steps,
                                    metrics={"val_acc": value_of(lr, steps), "test_acc": test_of(lr)})
    return waves


def test_hyperband_promotes_on_validation_only_and_never_reads_test():
    registry = load_registry(())
    suite = parse_suite(SEARCH.replace("trials = 4", 'trials = 17\npruner = "hyperband"\neta = 3')
                        .replace("steps = 2", "steps = 27"), "s.toml", registry)
    (key, base), = groups(suite).items()
    space = {"lr": LogUniform(1e-5, 1e-1)}

    def val(lr, steps):  # a known truth: best near lr = 1e-3, better with more steps
        return 1 - abs(math.log10(lr) + 3) / 4 - 1 / steps

    runs = []
    for noise in (0, 1):
        rng = random.Random(noise)
        search = GroupSearch(key, base, space, suite.search.options, registry)
        waves = drive(search, val, lambda lr: rng.random())  # test accuracy: noise, differing between runs
        runs.append(waves)
        finals = [t for t in search.study.trials if t.state.name == "COMPLETE"]
        pruned = [t for t in search.study.trials if t.state.name == "PRUNED"]
        first = search.study.trials[:9]  # the first bracket: 9 trials at 3 steps, 3 at 9, 1 at 27
        at_3 = sorted(first, key=lambda t: -t.intermediate_values[3])
        promoted = {t.number for t in first if 9 in t.intermediate_values}
        assert promoted == {t.number for t in at_3[:3]}  # the top third by validation accuracy
        assert len(finals) == 1 + 1 + 3 and len(pruned) == 17 - 5  # the brackets' survivors complete
        assert search.study.best_value == max(val(c.strategy.options.lr, 27) for c in search.final.values())
    assert runs[0] == runs[1]  # the test labels' noise changed nothing the search planned


def test_search_guide_states_each_declared_space():
    """The search guide's table of declared spaces is the strategies' ``space``, bound for bound."""
    import re
    from tlbench.contract.space import LogUniform, Uniform
    from helpers.docs import page
    section = page("guides/search.md").split("\n- ", 1)[0]
    registry, stated = load_registry(()), {}
    for names, spec in re.findall(r"^\| (`\w+`(?:, `\w+`)*) \| (.+) \|$", section, flags=re.M):
        params = {key: (LogUniform if kind == "log-uniform" else Uniform)(float(low), float(high))
                  for key, kind, low, high in re.findall(r"`(\w+)` (log-uniform|uniform) \[([^,]+), ([^\]]+)\]", spec)}
        stated.update({name: params for name in re.findall(r"`(\w+)`", names)})
    declared = {name: s.space for name, s in registry.records["strategy"].items() if s.space}
    assert stated == declared


def test_the_tuning_budget_counts_a_grid_from_its_records_and_a_search_from_the_store_meta():
    import pandas as pd
    from tlbench.report.sections.selection import tuning_budget
    rows = [dict(backbone="b", dataset="d", strategy=s, label_fraction=1.0, variant=v, seed=seed, status="ok",
                 steps=steps) for s, v, steps in [("finetune", "{\"lr\":0.001}", 10), ("finetune", "{\"lr\":0.01}", 10),
                                                  ("lora", "{\"lr\":0.004}", 27), ("linear_probe", "{}", None)]
            for seed in (0, 1)]
    searched = [dict(backbone="b", dataset="d", strategy="lora", label_fraction=1.0, trials=9, cells=26, steps=486)]
    budget = tuning_budget(pd.DataFrame(rows), searched).set_index("strategy")
    assert budget.loc["finetune", "trials"] == 2 and budget.loc["finetune", "steps"] == 40  # 2 variants x 2 seeds
    assert budget.loc["lora", "trials"] == 9 and budget.loc["lora", "steps"] == 486  # pruned rungs counted
    assert math.isnan(budget.loc["linear_probe", "steps"])  # trains no steps


def test_a_user_error_inside_a_trial_stops_the_search_with_exit_2(write_suite, cli):
    text = SEARCH.replace('plugin = "digits"\nimage_size = 8', 'plugin = "late_failure"')
    result = cli("run", write_suite(text), "--no-report", "--plugin", "tests.helpers.preflight_plugins")
    assert result.exit_code == 2, result.output
    assert "late_failure: data/test.csv: row 7" in result.stderr
