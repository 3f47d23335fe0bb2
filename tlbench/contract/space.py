"""Search spaces and the suite's ``[search]`` table.

A strategy's ``space`` maps option names to one of :class:`LogUniform`, :class:`Uniform`,
:class:`IntUniform` or :class:`Choice` (``{"lr": LogUniform(1e-5, 1e-2)}``), declared beside its
defaults. The search planner (:mod:`tlbench.run.search`) samples them through Optuna; a suite may
replace part of a strategy's space in ``[search.space.<strategy label>]`` with the TOML forms
:func:`from_toml` reads. This module only validates (it is imported by every worker); Optuna is
imported where a search runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from tlbench.contract.options import check_strategy, shown as _shown, validate as _validate
from tlbench.contract.values import Options

__all__ = ["Choice", "Distribution", "IntUniform", "LogUniform", "Search", "SearchOptions", "Uniform", "from_toml"]

#: sampled floats are rounded to this many significant digits, so variants read well in tables
DIGITS = 3


def _rounded(x: float) -> float:
    return float(f"{x:.{DIGITS}g}")


@dataclass(frozen=True)
class Uniform:
    """A float uniform in ``[low, high]``."""

    low: float
    high: float

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"{type(self).__name__}: low {self.low} must be below high {self.high}")

    def to_optuna(self):
        import optuna
        return optuna.distributions.FloatDistribution(self.low, self.high)

    def value(self, x) -> float:
        """The value a cell gets for the sampled ``x`` (rounded, kept inside the range)."""
        return min(max(_rounded(x), self.low), self.high)

    def __str__(self) -> str:
        return f"uniform[{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class LogUniform(Uniform):
    """A float whose logarithm is uniform in ``[log low, log high]`` (learning rates, C)."""

    def __post_init__(self):
        super().__post_init__()
        if self.low <= 0:
            raise ValueError(f"LogUniform: low {self.low} must be above 0")

    def to_optuna(self):
        import optuna
        return optuna.distributions.FloatDistribution(self.low, self.high, log=True)

    def __str__(self) -> str:
        return f"log-uniform[{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class IntUniform:
    """An integer in ``[low, high]``, uniform (or log-uniform with ``log=True``)."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self):
        if not self.low < self.high or (self.log and self.low < 1):
            raise ValueError(f"IntUniform: need low < high (and low >= 1 with log), got {self.low}, {self.high}")

    def to_optuna(self):
        import optuna
        return optuna.distributions.IntDistribution(self.low, self.high, log=self.log)

    def value(self, x) -> int:
        return int(x)

    def __str__(self) -> str:
        return f"{'log-' if self.log else ''}int[{self.low}, {self.high}]"


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (numbers, strings or booleans)."""

    values: tuple

    def __post_init__(self):
        if not self.values:
            raise ValueError("Choice: give at least one value")
        if not all(isinstance(v, (str, int, float, bool)) for v in self.values):
            raise ValueError(f"Choice: each value must be a number, a string or a boolean (got {list(self.values)})")

    def to_optuna(self):
        import optuna
        return optuna.distributions.CategoricalDistribution(self.values)

    def value(self, x):
        return x

    def __str__(self) -> str:
        return "{" + ", ".join(map(str, self.values)) + "}"


Distribution = Uniform | LogUniform | IntUniform | Choice


def from_toml(value: Any) -> Distribution:
    """A distribution from its suite form: a list is a :class:`Choice`; a table ``{low, high}``
    is :class:`Uniform`, with ``log = true`` :class:`LogUniform`, and integers for both bounds
    :class:`IntUniform`. Raises ``ValueError`` with what would work instead."""
    if isinstance(value, list):
        return Choice(tuple(value))
    if not isinstance(value, dict) or set(value) - {"low", "high", "log"} or not {"low", "high"} <= set(value):
        raise ValueError("write a list of choices, or a table { low = ..., high = ... } (log = true for a "
                         "log-uniform range)")
    low, high, log = value["low"], value["high"], value.get("log", False)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)):
        raise ValueError(f"low and high must be numbers (got {low!r}, {high!r})")
    if not isinstance(log, bool):
        raise ValueError(f"log must be true or false (got {log!r})")
    if isinstance(low, int) and isinstance(high, int):
        return IntUniform(low, high, log)
    return (LogUniform if log else Uniform)(float(low), float(high))


class SearchOptions(Options):
    """The ``[search]`` table (without its ``space`` sub-tables)."""

    method: Literal["grid", "random", "tpe"] = Field(
        "grid", description="grid: the suite's and strategies' declared grids (as without [search]); random or "
                            "tpe (Optuna's TPE): `trials` samples of each strategy's space")
    trials: int = Field(20, ge=1, description="configurations sampled per (backbone, dataset, strategy, label "
                                              "fraction); each runs every seed")
    pruner: Literal["none", "halving", "hyperband"] = Field(
        "none", description="none: every trial trains [train] steps; halving: successive halving, every trial "
                            "starts at min_steps and the best 1/eta go on to eta times the steps; hyperband: "
                            "the trials spread over halving brackets that start at min_steps * eta**k")
    eta: int = Field(3, ge=2, description="reduction factor of halving and hyperband")
    min_steps: int | None = Field(None, ge=1, description="the smallest budget of a pruned trial, in optimizer "
                                                          "steps (default [train] steps // eta**2: three rungs)")
    parallel: int = Field(4, ge=1, description="trials sampled at once without a pruner (a wave the executor "
                                               "runs in parallel; changing it changes what later trials sample)")
    startup_trials: int = Field(5, ge=1, description="tpe: trials sampled at random before TPE models the results")
    seed: int = Field(0, ge=0, description="seed of the samplers (each group's study seeds from it and the group)")


@dataclass(frozen=True)
class Search:
    """A validated ``[search]``: its options and, per strategy label, the space searched (empty:
    that strategy keeps its declared variants)."""

    options: SearchOptions
    spaces: dict[str, dict[str, Distribution]] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.options.method != "grid"


def parse_search(table: Any, strategies: list, registry, trains: list, where: str) -> Search:
    """Validate a suite's ``[search]`` table against its strategy entries (``Entry`` objects) and
    its ``[train]`` variants (``(TrainOptions, variant)`` pairs).

    Each strategy label's space is its plugin's declared ``space``, updated by
    ``[search.space.<label>]``; an option the suite's table sets to one value is fixed (not
    searched), one it sets to a list is searched as a :class:`Choice` of those values.
    """
    from tlbench.contract.errors import UserError
    at = f"{where}[search]"
    if table is None:
        return Search(SearchOptions())
    if not isinstance(table, dict):
        raise UserError(f"{at} must be a table: write [search] and key = value lines below it (got {_shown(table)})")
    overrides = table.get("space", {})
    options = _validate(SearchOptions, {k: v for k, v in table.items() if k != "space"}, at)
    given = sorted(set(table) - {"method"})
    if options.method == "grid" and given:
        raise UserError(f"{at}.{given[0]}: applies to method \"random\" or \"tpe\", not to \"grid\" (which runs "
                        "the declared grids); set method")
    if not isinstance(overrides, dict):
        raise UserError(f"{at}.space must be a table: write [search.space.<strategy label>] and option = "
                        "{ low = ..., high = ..., log = true } or [choices] lines below it")
    labels = sorted({e.label for e in strategies})
    for label in overrides:
        if label not in labels:
            raise UserError(f"{at}.space.{label}: no [[strategy]] has that label; the suite's: {', '.join(labels)}")
    if options.method == "grid":
        return Search(options)
    swept_train = sorted({k for _, v in trains for k in v})
    if swept_train:
        raise UserError(f"{at}: method {options.method!r} searches the strategies' spaces; [train] "
                        f"{', '.join(swept_train)} is swept: give it one value, or use method = \"grid\"")
    steps = trains[0][0].steps
    if options.pruner != "none":
        if steps is None:
            raise UserError(f"{at}.pruner: {options.pruner!r} needs the full budget in optimizer steps: set "
                            "[train] steps = N")
        low = options.min_steps or steps // options.eta ** 2
        if low < 1 or low * options.eta > steps:
            raise UserError(f"{at}.min_steps: no rung fits below [train] steps = {steps} with eta = "
                            f"{options.eta}; give min_steps <= {steps // options.eta} (or more steps)")
    spaces = {}
    for label in labels:
        entries = [e for e in strategies if e.label == label]
        record = registry.get("strategy", entries[0].plugin)
        given = overrides.get(label, {})
        if not isinstance(given, dict):
            raise UserError(f"{at}.space.{label} must be a table of option = distribution lines")
        space = dict(record.space)
        for key, value in given.items():
            if key not in record.options.model_fields:
                raise UserError(f"{at}.space.{label}.{key}: unknown parameter of strategy {record.name!r}; its "
                                f"options: {', '.join(record.options.model_fields)}")
            try:
                space[key] = from_toml(value)
            except ValueError as exc:
                raise UserError(f"{at}.space.{label}.{key}: {exc}") from None
        fixed = entries[0].options.model_fields_set - set(entries[0].variant)
        space = {k: v for k, v in space.items() if k not in fixed}
        for key in entries[0].variant:  # the suite's own lists: searched as choices
            if key in given:
                raise UserError(f"{at}.space.{label}.{key}: also a list in its [[strategy]] table; keep one of the two")
            space[key] = Choice(tuple(dict.fromkeys(e.variant[key] for e in entries)))
        for key, dist in space.items():
            ends = dist.values if isinstance(dist, Choice) else (dist.low, dist.high)
            for value in ends:
                where = f"{at}.space.{label} ({record.name}, {dist})"
                check_strategy(record, _validate(record.options, {**entries[0].options.model_dump(), key: value},
                                                 where), registry, where)
        spaces[label] = space
    return Search(options, spaces)
