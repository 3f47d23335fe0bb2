"""The cell: what one training run is, as plugins and hooks see it (the contract layer, beside
:mod:`tlbench.plugins.records`; the planner in :mod:`tlbench.plan.suite` makes these, nothing here plans).

A :class:`Cell` is one (backbone, dataset, strategy variant, train options, seed, label fraction);
its ``id`` is a hash of the :func:`canonical` JSON of everything that determines its result.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any, Callable, Literal

from pydantic import Field, field_validator

from tlbench.contract.values import Options

__all__ = ["Cell", "Entry", "Forgetting", "TrainOptions", "canonical"]


def canonical(value) -> str:
    """The one canonical JSON of tlbench: sorted keys, no whitespace, anything JSON lacks as ``str``.
    Cell ids, groups, variants and feature-cache keys are hashes or texts of it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class TrainOptions(Options):
    #: options added after cells were stored (left out of a cell's id at these values)
    omitted_at = {"compile": False, "stop": "budget", "eval_every_epochs": 0.0, "budget": 1.0}

    epochs: int = Field(10, gt=0, description="passes over the labelled training data")
    min_steps: int = Field(0, ge=0, description="at least this many optimizer steps, so that small label "
                           "fractions are not starved of updates")
    batch_size: int = Field(128, gt=0, description="training batch size")
    eval_batch_size: int = Field(512, gt=0, description="evaluation and feature-extraction batch size")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 autocast on CUDA, fp32 on CPU")
    compile: bool = Field(False, description="torch.compile the training step once per cell (full batches, static "
                                             "shapes; compile time recorded apart as compile_seconds)")
    validation: Literal["budget", "full"] = Field(
        "budget", description="budget: the label budget cuts the validation split too (the same fraction, at least "
                              "one example a class), as a user with that few labels has; full: every validation label")
    steps: int | None = Field(None, gt=0, description="exactly this many optimizer steps (overrides epochs and "
                                                      "min_steps; a search's budget)")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="learning rate after the linear warm-up: "
                                                    "cosine decay to 0, or constant")
    warmup: float = Field(0.05, ge=0, lt=1, description="fraction of the steps (at least one) of linear warm-up")
    augment: Literal["none", "crop", "flip_crop", "trivialaugment", "randaugment"] = Field(
        "none", description="image augmentation of training batches on the device (tlbench.train.augment): random "
                            "resized crop, + horizontal flip, TrivialAugment-Wide, RandAugment(2, 9); images only "
                            "(a text cell with it fails)")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the cross-entropy of the "
                                                               "supervised strategies")
    eval_every: int = Field(0, ge=0, description="evaluate the selection split (validation) every this many steps "
                                                 "and at the last; 0: about 10 times per cell")
    keep_best: bool = Field(True, description="restore the state of the best validation evaluation before "
                                              "predicting (false: the last step's state)")
    patience: int = Field(0, ge=0, description="stop after this many evaluations without a better validation "
                                               "accuracy (0: never stop early)")
    stop: Literal["budget", "plateau"] = Field(
        "budget", description="budget: train the planned steps (patience, if set, may stop earlier); plateau: train "
                              "until validation has not improved for patience evaluations (patience > 0), at most "
                              "the planned steps (epochs, at least min_steps; or steps)")
    eval_every_epochs: float = Field(0.0, ge=0, description="evaluate the selection split every this many epochs of "
                                     "the training split and at the last; with eval_every also set, at least that many "
                                     "steps apart (a small label budget's epoch can be two steps)")
    budget: float = Field(1.0, gt=0, description="multiplies the planned steps (the cap) and, with stop = "
                                                 "\"plateau\", the patience (rounded up); the budget check's re-run "
                                                 "cells set it ([budget_check] factor)")

    @field_validator("stop")
    @classmethod
    def _stop_needs_patience(cls, stop, info):
        if stop == "plateau" and not info.data.get("patience"):
            raise ValueError('stop = "plateau" needs [train] patience > 0 (evaluations without a better '
                             'validation accuracy before stopping)')
        return stop


@dataclass(frozen=True)
class Entry:
    """One validated variant of a [[backbone]], [[dataset]] or [[strategy]] table."""

    plugin: str
    label: str
    options: Options
    variant: dict[str, Any]
    dedupe: bool | None = None  # datasets only: drop cross-split copies (tlbench.train.data.deduplicate)
    #: datasets only: out-of-distribution test sets (dataset entries with the same classes) that every
    #: cell of this dataset is evaluated on too, as the ``ood:<label>`` splits
    ood: tuple["Entry", ...] = ()

    def to_plain(self) -> dict:
        """This entry as plain data: its options as values, not as an instance of the plugin's class."""
        return {"plugin": self.plugin, "label": self.label, "options": self.options.model_dump(),
                "variant": self.variant, "dedupe": self.dedupe, "ood": [entry.to_plain() for entry in self.ood]}

    @classmethod
    def from_plain(cls, data: dict, options: type[Options],
                   dataset_options: Callable[[str], type[Options]] | None = None) -> "Entry":
        """The entry :meth:`to_plain` gave, its options validated by ``options`` (its plugin's class) and
        its ``ood`` entries' by ``dataset_options(plugin)``."""
        return cls(data["plugin"], data["label"], options.model_validate(data["options"]), data["variant"],
                   data["dedupe"], tuple(cls.from_plain(e, dataset_options(e["plugin"])) for e in data["ood"]))

    def config(self) -> dict:
        core = {} if self.dedupe is None else {"dedupe": self.dedupe}
        if self.ood:  # left out when empty: configurations stored before it keep their ids
            core["ood"] = [entry.config() for entry in self.ood]
        return {"plugin": self.plugin, **core, **self.options.as_config()}


@dataclass(frozen=True)
class Forgetting:
    """The suite's ``[forgetting]`` table: the held-out ``reference`` tasks (dataset entries) on which a
    linear probe measures what a cell's adaptation cost the backbone's representation, with at
    most ``examples`` examples of each reference split (train: fit; test: scored)."""

    reference: tuple[Entry, ...]
    examples: int = 1000

    def config(self) -> dict:
        return {"reference": [entry.config() for entry in self.reference], "examples": self.examples}


#: the kinds of entry a cell has, one each
ENTRY_KINDS = ("backbone", "dataset", "strategy")


@dataclass(frozen=True)
class Cell:
    suite: str
    backbone: Entry
    dataset: Entry
    strategy: Entry
    train: TrainOptions
    train_variant: dict[str, Any]
    seed: int
    label_fraction: float
    skip_reason: str | None = None
    #: the suite's ``[forgetting]`` table (None: forgetting is not measured)
    forgetting: Forgetting | None = None

    def vary(self, registry, strategy: dict, train: dict) -> "Cell":
        """This cell with ``strategy`` and ``[train]`` options replaced and validated again (a search
        trial); they show in its variant, and its id hashes its configuration as for any cell."""
        options = registry.get("strategy", self.strategy.plugin).options
        entry = Entry(self.strategy.plugin, self.strategy.label,
                      options.model_validate({**self.strategy.options.model_dump(), **strategy}),
                      {**self.strategy.variant, **strategy})
        return replace(self, strategy=entry, train=TrainOptions.model_validate({**self.train.model_dump(), **train}),
                       train_variant={**self.train_variant, **train})

    def config(self) -> dict:
        """Everything that determines the result (not the device or executor it runs on)."""
        config = {"backbone": self.backbone.config(), "dataset": self.dataset.config(),
                  "strategy": self.strategy.config(), "train": self.train.as_config(),
                  "seed": self.seed, "label_fraction": self.label_fraction}
        if self.forgetting is not None:  # left out without one: configurations stored before it keep their ids
            config["forgetting"] = self.forgetting.config()
        return config

    @functools.cached_property
    def group(self) -> str:
        """Cells of one group share a dataset and a backbone: a worker that gets them in a row
        reuses its loaded data, encoded inputs and features."""
        return canonical([self.dataset.config(), self.backbone.config()])

    @functools.cached_property
    def id(self) -> str:
        return hashlib.sha256(canonical(self.config()).encode()).hexdigest()[:16]

    @property
    def variant(self) -> str:
        return canonical({**self.strategy.variant, **self.train_variant})

    def to_plain(self) -> dict:
        """This cell as plain data, every plugin's options as values: what crosses to a worker
        (:class:`tlbench.contract.session.CellSpec`), which may not be able to import a plugin's option
        class by name (one made at run time, as peft's methods' are); :meth:`from_plain` inverts it."""
        return {"suite": self.suite, **{kind: getattr(self, kind).to_plain() for kind in ENTRY_KINDS},
                "train": self.train.model_dump(), "train_variant": self.train_variant, "seed": self.seed,
                "label_fraction": self.label_fraction, "skip_reason": self.skip_reason,
                "forgetting": None if self.forgetting is None else
                {"reference": [e.to_plain() for e in self.forgetting.reference],
                 "examples": self.forgetting.examples}}

    @classmethod
    def from_plain(cls, data: dict, options_of: Callable[[str, str], type[Options]]) -> "Cell":
        """The cell :meth:`to_plain` gave, each entry's options validated again by
        ``options_of(kind, plugin)`` (a registry's option class of that plugin): the same id."""
        def dataset(plugin: str) -> type[Options]:
            return options_of("dataset", plugin)
        entries = {kind: Entry.from_plain(data[kind], options_of(kind, data[kind]["plugin"]), dataset)
                   for kind in ENTRY_KINDS}
        forgetting = data["forgetting"] and Forgetting(
            tuple(Entry.from_plain(e, dataset(e["plugin"])) for e in data["forgetting"]["reference"]),
            data["forgetting"]["examples"])
        return cls(data["suite"], **entries, train=TrainOptions.model_validate(data["train"]),
                   train_variant=data["train_variant"], seed=data["seed"], label_fraction=data["label_fraction"],
                   skip_reason=data["skip_reason"], forgetting=forgetting)

    def describe(self) -> str:
        return (f"{self.backbone.label} · {self.dataset.label} · {self.strategy.label} {self.variant} · "
                f"{self.label_fraction:g} labels · seed {self.seed}")
