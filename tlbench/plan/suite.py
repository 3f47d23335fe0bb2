"""Suite TOML -> validated suite -> expanded cells.

Every value is validated before anything trains; every error names the file and the key. A list
given where an option takes one value sweeps it; each combination is a *variant* of that entry.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import tomllib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tlbench.contract.cells import Cell, Entry, Forgetting, TrainOptions, canonical  # noqa: F401 (re-exported)
from tlbench.contract.errors import UserError
from tlbench.contract.options import check_strategy
from tlbench.contract.options import field_help as _help, shown as _shown, validate as _validate  # noqa: F401
from tlbench.plugins import executors
from tlbench.modalities import modality
from tlbench.tasks import task as tasks
from tlbench.contract.values import Options
from tlbench.plugins.registry import Registry
from tlbench.contract.space import Search, SearchOptions, parse_search

SECTIONS = ("suite", "train", "executor", "backbone", "dataset", "strategy", "search", "budget_check", "forgetting")
ENTRY_KEYS = ("plugin", "label", "dedupe", "ood")  # keys the core reads; the rest are the plugin's options
FILTER_KEYS = ("dataset", "backbone", "strategy")  # the axes `--filter` selects on


class SuiteOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="names the results folder")
    description: str = Field("", description="free text, shown in reports")
    seeds: list[Annotated[int, Field(ge=0, lt=2**32)]] = Field([0], min_length=1, description="one cell per seed")
    label_fractions: list[float] = Field([1.0], min_length=1,
                                         description="fractions of the training labels kept, each in (0, 1]")
    output: str = Field("results", description="results go to <output>/<name>/")
    executor: str = Field("inprocess", description="executor plugin that runs the cells (its options: [executor])")
    measure_deployment: bool = Field(True, description="after training, measure each cell's deployed model: "
                                     "size, latency at batch 1, throughput (about a second a cell)")

    @field_validator("label_fractions")
    @classmethod
    def _fractions(cls, values):
        for v in values:
            if not 0 < v <= 1:
                raise ValueError(f"label fraction {v} is outside (0, 1]")
        return values


class BudgetCheckOptions(BaseModel):
    """``[budget_check]``: re-run a sample of the suite's rows at a larger training budget."""

    model_config = ConfigDict(extra="forbid")
    factor: float = Field(2.0, gt=1, description="the re-run's budget, in multiples of the suite's (its steps, "
                                                 "and its patience under stop = \"plateau\")")
    sample: float = Field(1.0, gt=0, le=1, description="the share of rows (backbone, dataset, label fraction) "
                                                       "re-run, chosen by a stable hash of the row")


class ForgettingOptions(BaseModel):
    """``[forgetting]``: measure in every cell that adapts a pretrained backbone what it cost the
    representation, by a linear probe on held-out reference tasks."""

    model_config = ConfigDict(extra="forbid")
    reference: list[str | dict[str, Any]] = Field(min_length=1, description=(
        "dataset plugins (a name, or an inline table with plugin = \"...\" and its options) of the "
        "suite's modality, none of them a dataset of the suite: the held-out tasks the probe is fitted on"))
    examples: int = Field(1000, ge=20, description="at most this many examples of each reference task's train "
                                                  "split (the probe's fit) and of its test split (scored), "
                                                  "stratified, fixed per suite")


def sampled(cell: Cell, share: float) -> bool:
    """Whether ``cell``'s row (backbone, dataset, label fraction) is among the ``share`` of rows the
    budget check re-runs: a hash of the row's configuration, so the same rows whatever else the
    suite holds (strategies, seeds, other rows)."""
    row = canonical([cell.backbone.config(), cell.dataset.config(), cell.label_fraction])
    return int(hashlib.sha256(row.encode()).hexdigest()[:12], 16) / 16 ** 12 < share


def budget_check_cells(cells: list[Cell], check: BudgetCheckOptions) -> list[Cell]:
    """The budget check's cells: every runnable cell of a sampled row again, with ``[train] budget``
    multiplied by ``check.factor`` (shown in its variant, so it is a cell of its own id)."""
    out = []
    for cell in cells:
        if cell.skip_reason or not sampled(cell, check.sample):
            continue
        budget = round(cell.train.budget * check.factor, 6)
        out.append(replace(cell, train=cell.train.model_copy(update={"budget": budget}),
                           train_variant={**cell.train_variant, "budget": budget}))
    return out


@dataclass(frozen=True)
class Suite:
    path: Path
    text: str
    options: SuiteOptions
    cells: list[Cell]
    executor_options: dict[str, Any]
    search: Search = field(default_factory=lambda: Search(SearchOptions()))
    #: the validated ``[budget_check]`` table (None: none); its cells are in ``cells`` (budget > 1)
    budget_check: BudgetCheckOptions | None = None

    @property
    def results_dir(self) -> Path:
        """``<output>/<name>``; a relative output is taken from the current directory."""
        return Path(self.options.output) / self.options.name

    def select(self, filters: dict[str, list[str]]) -> list[Cell]:
        """The cells whose backbone, dataset and strategy labels are among ``filters``
        (``{"dataset": ["digits"], ...}``); a name the suite lacks is a UserError."""
        cells = self.cells
        for kind, names in filters.items():
            valid = sorted({getattr(c, kind).label for c in self.cells})
            unknown = [n for n in names if n not in valid]
            if unknown:
                raise UserError(f"{self.path}: --filter {kind}={','.join(unknown)} is not in this suite; "
                                f"its {kind} labels: {', '.join(valid)}")
            cells = [c for c in cells if getattr(c, kind).label in names]
        if not cells:
            raise UserError(f"{self.path}: no cell has that combination of --filter values")
        return cells


def parse_filters(items: Iterable[str]) -> dict[str, list[str]]:
    """``("strategy=lora,finetune", ...)`` (``--filter``) -> ``{"strategy": ["lora", "finetune"]}``;
    an item that is not KEY=A,B with KEY in :data:`FILTER_KEYS` is a UserError."""
    parsed: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or key not in FILTER_KEYS:
            raise UserError(f"--filter {item!r}: write KEY=A,B with KEY one of {', '.join(FILTER_KEYS)}")
        parsed.setdefault(key, []).extend(v for v in values.split(",") if v)
    return parsed


def load_suite(path: str | Path, registry: Registry, output: str | None = None) -> Suite:
    """Read, validate and expand a suite file; raises :class:`UserError` naming file and key."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read the suite file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save the suite file as UTF-8") from None
    return parse_suite(text, path, registry, output)


def to_toml(raw: Mapping[str, Any], where: str = "<dict>") -> str:
    """The TOML text of a suite given as a dict of its tables (``{"suite": {...}, "backbone":
    [{...}, ...], ...}``, what :func:`tomllib.loads` gives for a suite file): what a run stores and
    reports as the suite's text. A value TOML has no form for (None, a path, ...) is a UserError
    naming its key."""
    scalars = [f"{_toml_key(k)} = {_toml_value(v, f'{where}: {k}')}" for k, v in raw.items()
               if not _is_table(v) and not _is_table_array(v)]
    lines = [*scalars]
    for name, value in raw.items():
        tables = [value] if _is_table(value) else value if _is_table_array(value) else []
        header = f"[{_toml_key(name)}]" if _is_table(value) else f"[[{_toml_key(name)}]]"
        for table in tables:
            lines += ["", header, *(f"{_toml_key(k)} = {_toml_value(v, f'{where}: [{name}].{k}')}"
                                    for k, v in table.items())]
    return "\n".join(lines).lstrip("\n") + "\n"


def _is_table(value) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(t, Mapping) for t in value)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", str(key)) else _toml_string(str(key))


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value, at: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if value != value else "inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v, at) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v, f'{at}.{k}')}" for k, v in value.items()) + "}"
    raise UserError(f"{at}: {value!r} has no TOML form; give a string, number, boolean, list or table "
                    "(or leave the key out for its default)")


def parse_suite(text: str, path: str | Path, registry: Registry, output: str | None = None) -> Suite:
    """Validate and expand a suite's text (``path`` names it in errors)."""
    path = Path(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None
    where = f"{path}: "
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise UserError(f"{where}unknown section [{unknown[0]}]; valid sections: {', '.join(SECTIONS)}")
    if "suite" not in raw:
        raise UserError(f"{where}missing [suite] section with at least name = \"...\"")
    for section in ("suite", "train", "executor", "budget_check", "forgetting"):
        if section in raw and not isinstance(raw[section], dict):
            raise UserError(f"{where}[{section}] must be a table: write [{section}] and key = value lines "
                            f"below it (got {_shown(raw[section])})")
    suite_opts = _validate(SuiteOptions, raw["suite"], f"{where}[suite]")
    if output:
        suite_opts = suite_opts.model_copy(update={"output": output})
    executor_options = raw.get("executor", {})
    executors.executor_options(registry, suite_opts.executor, executor_options, f"{where}[suite] executor",
                               f"{where}[executor] ({suite_opts.executor})")
    if "device" in raw.get("train", {}):
        raise UserError(f"{where}[train].device: devices are executor resources now; write [executor] "
                        "device = \"...\" (inprocess) or devices = [...] (local)")
    trains = _variants(TrainOptions, raw.get("train", {}), f"{where}[train]")
    searching = isinstance(raw.get("search"), dict) and raw["search"].get("method", "grid") != "grid"
    axes = {kind: _entries(kind, raw, registry, where, searching) for kind in ("backbone", "dataset", "strategy")}
    search = parse_search(raw.get("search"), axes["strategy"], registry, trains, where)
    check = None
    if "budget_check" in raw:
        check = _validate(BudgetCheckOptions, raw["budget_check"], f"{where}[budget_check]")
        if search.active:
            raise UserError(f"{where}[budget_check]: a [search] with method {search.options.method!r} samples its "
                            "cells while it runs, and the budget check re-runs planned cells; leave out "
                            "[budget_check] or use method = \"grid\"")
    forgetting = _forgetting(raw.get("forgetting"), axes["dataset"], registry, where)
    _check_augment(trains, axes["dataset"], registry, where)
    cells = []
    for backbone, dataset, strategy, (train, train_variant) in itertools.product(
            axes["backbone"], axes["dataset"], axes["strategy"], trains):
        uses_fraction = registry.get("strategy", strategy.plugin).uses_label_fraction
        fractions = suite_opts.label_fractions if uses_fraction else [1.0]
        for fraction, seed in itertools.product(fractions, suite_opts.seeds):
            cells.append(Cell(suite_opts.name, backbone, dataset, strategy, train, train_variant, seed, fraction,
                              _skip_reason(registry, backbone, dataset, strategy), forgetting))
    if check is not None:  # a check cell the suite already holds (a [train] budget sweep) is planned once
        ids = {c.id for c in cells}
        cells += [c for c in budget_check_cells(cells, check) if c.id not in ids]
    return Suite(path, text, suite_opts, cells, executor_options, search, check)


def _forgetting(table: dict | None, datasets: list[Entry], registry: Registry, where: str) -> Forgetting | None:
    """The validated ``[forgetting]`` table: reference tasks held out from the suite's datasets and of
    a modality the suite trains on."""
    if table is None:
        return None
    at = f"{where}[forgetting]"
    options = _validate(ForgettingOptions, table, at)
    references = _dataset_entries(options.reference, registry, f"{at}.reference")
    modalities = {registry.get("dataset", d.plugin).modality for d in datasets}
    used = {d.plugin for d in datasets}
    for entry in references:
        kind = registry.get("dataset", entry.plugin).modality
        if kind not in modalities:
            raise UserError(f"{at}.reference: {entry.label!r} is a {kind} dataset and the suite's datasets are "
                            f"{', '.join(sorted(modalities))}; name a reference task of the same modality")
        if entry.plugin in used:
            raise UserError(f"{at}.reference: {entry.label!r} is also a dataset of the suite; forgetting is measured "
                            "on held-out tasks, so name another dataset")
    return Forgetting(references, options.examples)


def _dataset_entries(values: list, registry: Registry, at: str) -> tuple[Entry, ...]:
    """Dataset entries named by plugin (``"mnist"``) or inline tables (``{plugin = "mnist", max_per_class =
    50}``): one variant each (no sweeps), labelled by ``label`` or the plugin."""
    if not isinstance(values, list) or not values:
        raise UserError(f"{at}: must be a list of dataset plugins, e.g. [\"mnist\"] (got {_shown(values)})")
    entries = []
    for i, value in enumerate(values):
        table = {"plugin": value} if isinstance(value, str) else value
        if not isinstance(table, dict) or not isinstance(table.get("plugin"), str):
            raise UserError(f"{at}[{i}]: must be a dataset plugin name or a table with plugin = \"...\" "
                            f"(got {_shown(value)}); see `tlbench list datasets`")
        record = registry.get("dataset", table["plugin"], f"{at}[{i}]: ")
        options = {k: v for k, v in table.items() if k not in ("plugin", "label")}
        swept = [k for k, v in options.items() if isinstance(v, list) and k in record.options.model_fields
                 and not _takes_list(record.options.model_fields[k].annotation)]
        if swept:
            raise UserError(f"{at}[{i}].{swept[0]}: one value, not a sweep; list the variants as separate entries")
        entries.append(Entry(table["plugin"], table.get("label") or record.name,
                             _validate(record.options, options, f"{at}[{i}] ({record.name})"), {}))
    labels = [e.label for e in entries]
    if len(set(labels)) < len(labels):
        raise UserError(f"{at}: two entries are labelled {max(labels, key=labels.count)!r}; give one a label = \"...\"")
    return tuple(entries)


def _check_augment(trains, datasets: list[Entry], registry: Registry, where: str) -> None:
    """A UserError when a ``[train] augment`` policy is one a dataset's task cannot apply (detection
    and segmentation move boxes and masks with crops and flips only): its augmenter is made here,
    before anything trains, as the training loop would make it."""
    for train, _ in trains:
        if train.augment == "none":
            continue
        for dataset in datasets:
            task = tasks.get(registry.get("dataset", dataset.plugin).task)
            if task.augment is not None:
                try:
                    task.augment(train.augment, 0, "cpu")
                except UserError as exc:
                    raise UserError(f"{where}{exc} (dataset {dataset.label!r} is {task.name})") from None


def _skip_reason(registry: Registry, backbone: Entry, dataset: Entry, strategy: Entry) -> str | None:
    b = registry.get("backbone", backbone.plugin)
    d = registry.get("dataset", dataset.plugin)
    s = registry.get("strategy", strategy.plugin)
    if s.needs_target_domain and not d.has_target_domain:
        return f"strategy {strategy.label!r} needs a target domain and dataset {dataset.label!r} has none"
    tasks.get(d.task, f"dataset plugin {d.name!r}")
    return modality.mismatch(b, d, backbone.label, dataset.label) or tasks.mismatch(s, d, strategy.label, dataset.label)


def _entries(kind: str, raw: dict, registry: Registry, where: str, searching: bool = False) -> list[Entry]:
    tables = raw.get(kind)
    if not tables:
        raise UserError(f"{where}no [[{kind}]] table; add at least one, e.g. [[{kind}]] plugin = \"...\"")
    if not isinstance(tables, list):
        raise UserError(f"{where}[{kind}] must be an array of tables: write [[{kind}]]")
    entries: dict[tuple[str, str], Entry] = {}
    for i, table in enumerate(tables):
        at = f"{where}[[{kind}]] #{i + 1}"
        if not isinstance(table, dict):
            raise UserError(f"{at}: must be a table: write [[{kind}]] and plugin = \"...\" below it "
                            f"(got {_shown(table)})")
        if "plugin" not in table:
            raise UserError(f"{at}: missing key 'plugin'; see `tlbench list {kind}s`")
        if not isinstance(table["plugin"], str):
            raise UserError(f"{at}.plugin: must be a string naming a {kind} plugin (got {_shown(table['plugin'])}); "
                            f"see `tlbench list {kind}s`")
        if "label" in table and not (isinstance(table["label"], str) and table["label"].strip()):
            raise UserError(f"{at}.label: must be a non-empty string (got {_shown(table['label'])})")
        if "dedupe" in table and (kind != "dataset" or not isinstance(table["dedupe"], bool)):
            raise UserError(f"{at}.dedupe: " + ("must be true or false" if kind == "dataset" else
                                                f"only a [[dataset]] takes dedupe, not a [[{kind}]]"))
        if "ood" in table and kind != "dataset":
            raise UserError(f"{at}.ood: only a [[dataset]] takes out-of-distribution test sets, not a [[{kind}]]")
        record = registry.get(kind, table["plugin"], f"{at}: ")
        ood = _ood_entries(table["ood"], record, registry, f"{at}.ood") if "ood" in table else ()
        options = {k: v for k, v in table.items() if k not in ENTRY_KEYS}
        dedupe = table.get("dedupe", True) if kind == "dataset" else None
        if kind == "strategy" and not (searching and record.space):  # its grid, for options the suite leaves out
            options = {**{k: v for k, v in record.grid.items() if k not in options}, **options}
        at = f"{at} ({record.name})"
        for opts, variant in _variants(record.options, options, at):
            if kind == "strategy":
                check_strategy(record, opts, registry, at)
            label = _label(kind, table.get("label") or _base_label(kind, record.name, opts), variant)
            key = (label, canonical(variant) if kind == "strategy" else "")
            if key in entries and entries[key].options != opts:
                raise UserError(f"{at}: label {label!r} is already used by another [[{kind}]] with other "
                                "options; give this one a distinct label = \"...\"")
            entries.setdefault(key, Entry(table["plugin"], label, opts, variant, dedupe, ood))  # as named (qualified?)
    return list(entries.values())


def _ood_entries(values: list, dataset, registry: Registry, at: str) -> tuple[Entry, ...]:
    """A ``[[dataset]]``'s ``ood`` list: datasets of its modality (their classes are compared with its
    own by the preflight, which loads both)."""
    entries = _dataset_entries(values, registry, at)
    for entry in entries:
        kind = registry.get("dataset", entry.plugin).modality
        if kind != dataset.modality:
            raise UserError(f"{at}: {entry.label!r} is a {kind} dataset and {dataset.name!r} is {dataset.modality}; "
                            "an out-of-distribution test set has the dataset's modality and classes")
    return entries


def _base_label(kind: str, plugin: str, options: Options) -> str:
    """Backbones are named by their model, other entries by their plugin."""
    return getattr(options, "model", plugin) if kind == "backbone" else plugin


def _label(kind: str, base: str, variant: dict) -> str:
    """A backbone or dataset sweep makes different rows, not hyper-parameters: name them apart."""
    if kind == "strategy" or not variant:
        return base
    return base + "[" + ",".join(f"{k}={v}" for k, v in variant.items()) + "]"


def _variants(model: type[BaseModel], options: dict, at: str) -> list[tuple[Any, dict]]:
    """Expand list-valued options that the model takes as scalars; validate each combination."""
    swept = {k: v for k, v in options.items() if isinstance(v, list) and k in model.model_fields
             and not _takes_list(model.model_fields[k].annotation)}
    for key, values in swept.items():
        if not values:
            raise UserError(f"{at}.{key}: empty sweep []; give at least one value")
    combos = [dict(zip(swept, values)) for values in itertools.product(*swept.values())]
    return [(_validate(model, {**options, **combo}, at), combo) for combo in combos]


def _takes_list(annotation) -> bool:
    origins = {typing.get_origin(a) for a in (annotation, *typing.get_args(annotation))}
    return bool(origins & {list, tuple})
