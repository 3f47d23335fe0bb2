"""The search planner: a ``[search]`` with method ``random`` or ``tpe`` turns trials into cells.

For each (backbone, dataset, strategy, label fraction) whose strategy has a space, an Optuna study
in this (the controlling) process asks for trials; each trial becomes one cell per seed, a
:meth:`~tlbench.contract.cells.Cell.vary` of the suite's cell with the sampled options, so its id hashes
them as for any cell. The planner runs the cells in *waves* through
:func:`tlbench.run.runner.run_cells` (so every executor, the store's claims and resuming work as for
any cell) and tells the study each trial's mean validation score over seeds. Test labels are
never read: the objective is the task's ``val_<score>`` (``val_acc`` for classification), the
strategy's own selection split.

Pruning (``halving``, ``hyperband``) is planned here, in rungs of optimizer steps: a bracket's
trials train ``[train] steps // eta**k`` steps, the best ``1/eta`` by validation accuracy train
again with ``eta`` times as many (from scratch: a cell is one training run), up to ``[train]
steps``. The others are told to the study as pruned, with the value of each rung reported, so TPE
learns from them. Only trials that reach the full budget are variants of the plan (selected on
validation like any variant); the shorter rungs stay in the store and count in the tuning budget.

Resuming: the waves are a deterministic function of the suite and the stored records. A fresh
study with the same seeded sampler, told the same values in the same order, asks the same
trials, so a re-run replays the finished waves from the store without training and goes on where
it stopped; two runs of one suite plan the same cells and the store's claims keep them from
training one twice (a run waits for the cells the other holds).
"""
from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Iterator

from tlbench.contract.cells import Cell, canonical
from tlbench.tasks import task as tasks
from tlbench.plugins.registry import Registry
from tlbench.contract.results import CellRecord
from tlbench.run.runner import RunResult, run_cells, store_plan
from tlbench.contract.space import Distribution, SearchOptions
from tlbench.run.store import Store
from tlbench.plan.suite import Suite

#: seconds between looks at the store while another run holds cells of the current wave
POLL_SECONDS = 5.0

Key = tuple[str, str, str, float]  # backbone, dataset, strategy labels and label fraction


@dataclass(frozen=True)
class Bracket:
    """``trials`` sampled at once, trained ``budgets[0]`` steps; the best ``1/eta`` go on to each
    next budget. A budget of None is the suite's own ``[train]`` (no pruner)."""

    trials: int
    budgets: tuple[int | None, ...]


def brackets(options: SearchOptions, max_steps: int | None) -> list[Bracket]:
    """The brackets of a group's search, in the order they run."""
    if options.pruner == "none":
        n = options.trials
        return [Bracket(min(options.parallel, n - i), (None,)) for i in range(0, n, options.parallel)]
    eta = options.eta
    low = options.min_steps or max_steps // eta ** 2
    top = 0  # the most rungs a bracket has: low * eta**top <= max_steps
    while low * eta ** (top + 1) <= max_steps:
        top += 1
    starts = [top] if options.pruner == "halving" else list(range(top, -1, -1))
    weights = [-(-(top + 1) * eta ** s // (s + 1)) for s in starts]  # Hyperband's n per bracket (Li et al.)
    counts = _apportion(options.trials, weights)
    return [Bracket(n, tuple(max_steps // eta ** (s - i) for i in range(s + 1)))
            for s, n in zip(starts, counts) if n]


def _apportion(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainder, ties to the first)."""
    exact = [total * w / sum(weights) for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[:total - sum(counts)]:
        counts[i] += 1
    return counts


def groups(suite: Suite) -> dict[Key, list[Cell]]:
    """The suite's searched groups, each with its base cells (one per seed)."""
    found: dict[Key, dict[int, Cell]] = {}
    for c in suite.cells:
        if suite.search.spaces.get(c.strategy.label) and not c.skip_reason:
            found.setdefault(key_of(c), {}).setdefault(c.seed, c)
    return {k: list(by_seed.values()) for k, by_seed in found.items()}


@dataclass(frozen=True)
class Outline:
    """What a search will run, before it runs: the cells outside searched groups, one line per
    searched group, and how many cells the search plans at most (the progress bar's total)."""

    static: list[Cell]
    lines: list[str]
    cells: int


def outline(suite: Suite, cells: list[Cell], registry: Registry) -> Outline:
    found = groups(suite)
    chosen = {key_of(c) for c in cells}
    lines, planned = [], 0
    for key, base in found.items():
        if key not in chosen:
            continue
        options = group_options(suite.search.options, registry, base[0])
        plan = brackets(options, base[0].train.steps)
        n = sum(b.trials * len(b.budgets) for b in plan) * len(base)  # at most: promotions shrink later rungs
        steps = "" if options.pruner == "none" else "; rungs " + ", ".join(
            "→".join(map(str, b.budgets)) + f" ({b.trials} trials)" for b in plan)
        space = ", ".join(f"{k} {d}" for k, d in suite.search.spaces[key[2]].items())
        lines.append(f"search {options.method} · {key[0]} · {key[1]} · {key[2]} · {key[3]:g} labels: "
                     f"{options.trials} trials × {len(base)} seed(s), pruner {options.pruner}{steps}; {space}")
        planned += n
    static = [c for c in cells if key_of(c) not in found]
    return Outline(static, lines, planned + len(static))


def group_options(options: SearchOptions, registry: Registry, cell: Cell) -> SearchOptions:
    """The search options of ``cell``'s group: no pruner for a strategy that does not train in steps."""
    if registry.get("strategy", cell.strategy.plugin).trains_steps:
        return options
    return options.model_copy(update={"pruner": "none"})


def key_of(cell: Cell) -> Key:
    return cell.backbone.label, cell.dataset.label, cell.strategy.label, cell.label_fraction


class GroupSearch:
    """The study of one group: asks trials, plans their cells, tells their validation accuracy."""

    def __init__(self, key: Key, base: list[Cell], space: dict[str, Distribution], options: SearchOptions,
                 registry: Registry):
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.key, self.base, self.space, self.registry = key, base, space, registry
        self.options = group_options(options, registry, base[0])
        name = canonical(list(key))
        seed = int(hashlib.sha256(f"{options.seed}:{name}".encode()).hexdigest()[:8], 16)
        if options.method == "tpe":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=options.startup_trials)
        else:
            sampler = optuna.samplers.RandomSampler(seed=seed)
        self.study = optuna.create_study(direction="maximize", sampler=sampler, study_name=name)
        self.distributions = {k: d.to_optuna() for k, d in space.items()}
        self.planned: dict[str, Cell] = {}  # every cell the search asked for, by id
        self.final: dict[str, Cell] = {}  # those at the full budget: the plan's variants

    def cells(self, trial, steps: int | None) -> list[Cell]:
        """The trial's cells (one per seed) at ``steps`` (None: the suite's ``[train]``)."""
        options = {k: d.value(trial.params[k]) for k, d in self.space.items()}
        cells = [c.vary(self.registry, options, {} if steps is None else {"steps": steps}) for c in self.base]
        self.planned.update((c.id, c) for c in cells)
        return cells

    def plan(self, records: Callable[[], dict[str, CellRecord]]) -> Iterator[list[Cell]]:
        """Yield each wave of cells; once resumed, every cell yielded has a record in ``records()``."""
        import optuna
        full = self.base[0].train.steps
        for bracket in brackets(self.options, full):
            alive = [self.study.ask(self.distributions) for _ in range(bracket.trials)]
            for rung, steps in enumerate(bracket.budgets):
                last = rung == len(bracket.budgets) - 1
                wave = {t.number: self.cells(t, None if steps == full else steps) for t in alive}
                if last:
                    self.final.update((c.id, c) for cells in wave.values() for c in cells)
                yield [c for cells in wave.values() for c in cells]
                got = records()
                values = {t.number: mean_val(got[c.id] for c in wave[t.number]) for t in alive}
                for t in alive:
                    if values[t.number] is None:
                        self.study.tell(t, state=optuna.trial.TrialState.FAIL)
                    elif last:
                        self.study.tell(t, values[t.number])
                    else:
                        t.report(values[t.number], steps)
                ranked = sorted((t for t in alive if values[t.number] is not None),
                                key=lambda t: (-values[t.number], t.number))
                if last:
                    break
                alive = ranked[:max(1, len(alive) // self.options.eta)]
                for t in ranked[len(alive):]:
                    self.study.tell(t, state=optuna.trial.TrialState.PRUNED)
                if not alive:
                    break

    def budget(self, records: dict[str, CellRecord]) -> dict:
        """The tuning budget spent so far: configurations tried, cells and optimizer steps trained."""
        ran = [records[i] for i in self.planned if i in records]
        steps = [r.steps for r in ran]
        backbone, dataset, strategy, fraction = self.key
        return {"backbone": backbone, "dataset": dataset, "strategy": strategy, "label_fraction": fraction,
                "method": self.options.method, "pruner": self.options.pruner,
                "trials": len({canonical(c.strategy.variant) for c in self.planned.values()}), "cells": len(ran),
                "steps": sum(steps) if ran and None not in steps else None}


def mean_val(records) -> float | None:
    """The trial's objective: the mean over its seeds of its task's validation score (``val_acc``,
    ``val_ap``, ...; None if a cell is not ok)."""
    values = [r.metrics.get(f"val_{tasks.get(r.task).score}") if r.status == "ok" else None for r in records]
    return None if not values or None in values else sum(values) / len(values)


def run_search(suite: Suite, registry: Registry, pm, store: Store,
               cells: list[Cell] | None = None, rerun: bool = False, progress=None, **run_options) -> RunResult:
    """Run ``cells`` (default: the suite's) with their groups searched as ``[search]`` says.

    The cells of groups that are not searched run in the first wave, as :func:`run_cells` runs
    them. Searched groups left out of ``cells`` (``--filter``) are replayed from the store only,
    so their finished trials stay in the plan. ``pm`` (the plugin host) and ``run_options`` go to
    :func:`run_cells`.
    """
    chosen = {c.id for c in (suite.cells if cells is None else cells)}
    found = groups(suite)
    static = [c for c in suite.cells if key_of(c) not in found]
    searches = [GroupSearch(k, base, suite.search.spaces[k[2]], suite.search.options, registry)
                for k, base in found.items()]
    runnable = {s.key for s in searches if any(c.id in chosen and key_of(c) == s.key for c in suite.cells)}
    records = lambda: {r.cell_id: r for r in store.records(plan_only=False)}  # noqa: E731
    plans = {s.key: s.plan(records) for s in searches}
    waves = {key: next(plan) for key, plan in plans.items()}
    first = [c for c in static if c.id in chosen]
    result, done_here = RunResult(), set()

    def tracked(event, cell, record):
        if event == "done":
            done_here.add(cell.id)
        if progress:
            progress(event, cell, record)

    while waves or first:
        plan = replace(suite, cells=static + [c for s in searches for c in s.final.values()])
        store_plan(store, plan)
        finished = set() if rerun else store.finished()
        for key in [k for k, w in waves.items() if k not in runnable and any(c.id not in finished for c in w)]:
            del waves[key]  # a group --filter left out: replayed as far as the store goes
        wave = first + [c for w in waves.values() for c in w]
        todo = list({c.id: c for c in wave if c.id not in done_here and c.id not in finished}.values())
        if todo:
            step = run_cells(plan, registry, pm, store, rerun=rerun, progress=tracked, cells=todo, **run_options)
            result.failures += step.failures
            result.user_errors += step.user_errors
            if step.interrupted or step.user_errors:  # a user error stops the search: its cells never came
                result.interrupted = step.interrupted
                break
            if any(c.id not in done_here and not store.is_finished(c.id) for c in todo):
                time.sleep(POLL_SECONDS)  # another run holds some of them: wait for its records
                continue
        first = []
        for key in list(waves):
            waves[key] = next(plans[key], None)
            if waves[key] is None:
                del waves[key]
        got = records()
        store.set_meta("tuning", [s.budget(got) for s in searches])
    store_plan(store, replace(suite, cells=static + [c for s in searches for c in s.final.values()]))
    return result
