"""The public record types that plugins yield and the core consumes.

Every plugin hook returns a list of these small frozen records. A record names the thing,
gives one line of help, the pydantic model of its options (each field with a description,
shown by ``tlbench list``) and a factory. The core never imports a concrete plugin. The values
the records carry (``Options``, ``Split``, ``LoadedDataset``, ``Outcome``, ``Role``) are defined
in :mod:`tlbench.contract.values` and importable from here too.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Protocol

from tlbench.contract.values import LoadedDataset, Options, Outcome, Role, Split, move, shape_of, take  # noqa: F401

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from tlbench.train.context import CellContext
    from tlbench.contract.session import Session


#: ``StrategyPlugin.tasks`` of a strategy that trains whatever task the dataset poses
ANY_TASK = ("any",)


@dataclass(frozen=True)
class DatasetPlugin:
    name: str
    help: str
    options: type[Options]
    load: Callable[[Any], LoadedDataset]
    modality: str = "image"
    has_target_domain: bool = False
    #: the task its examples pose (:mod:`tlbench.tasks`): ``"classification"``, ``"detection"``,
    #: ``"segmentation"`` or one a plugin registered; its splits then carry that task's ``targets``
    task: str = "classification"
    #: ``check(options)``: a cheap look before any cell runs (files, columns, labels, that every
    #: example decodes) that raises :class:`tlbench.UserError` for what ``load`` would reject;
    #: without one the preflight calls ``load`` itself (see :mod:`tlbench.plan.preflight`)
    check: Callable[[Any], None] | None = None


class Encoder(Protocol):
    """Turns a dataset's raw inputs into tensors once (text: tokenisation), on the CPU.

    Called once per dataset with every split's raw inputs (``{"train": [...], "val": [...],
    ...}``); returns the same keys, each a tensor or a dict of tensors whose rows can be joined
    across splits (DANN joins source and target batches). ``key`` names every setting the result
    depends on (e.g. ``"tokenizer=minilm;max_length=128"``): the encoded data is cached per
    (dataset, key) and shared by every cell and backbone with that key.
    """

    key: str

    def __call__(self, inputs: dict[str, Any]) -> dict[str, torch.Tensor | dict[str, torch.Tensor]]: ...


@dataclass(frozen=True)
class BackbonePlugin:
    """``build(options, pretrained)`` returns a :class:`tlbench.Backbone`.

    ``pretrained=False`` must give the same architecture with random initialisation: that is
    what the ``scratch`` strategy trains. ``encoder(options)``, if given, returns the
    :class:`Encoder` that turns a dataset's raw inputs into what ``Backbone.prepare`` takes;
    without one the raw inputs go to ``prepare`` as they are (images).
    """

    name: str
    help: str
    options: type[Options]
    build: Callable[[Any, bool], Any]
    modality: str = "image"
    encoder: Callable[[Any], Encoder] | None = None
    #: ``check(options)``: a cheap look before any cell runs (the weights file or local model
    #: directory exists, the hub is reachable if it is needed) that raises :class:`tlbench.UserError`;
    #: without one the preflight calls ``build(options, True)`` itself
    check: Callable[[Any], None] | None = None


@dataclass(frozen=True)
class StrategyPlugin:
    """``run(ctx, options)`` trains on ``ctx`` and returns an :class:`Outcome`.

    A strategy with ``needs_target_domain`` is skipped, with the reason recorded, on datasets
    that have no target domain. ``grid`` gives default sweeps for options a suite leaves out
    (e.g. ``{"lr": [3e-4, 1e-3]}``); the variant with the best accuracy on ``select_on``
    (``"val"``: source validation; ``"target_val"``: target validation, oracles only) is
    reported. ``role`` is declared, stored in every record and read by the reports.
    ``uses_label_fraction=False`` declares that the strategy ignores the label budget: the
    suite then expands it at one fraction (1.0) only.

    ``finetunes_pretrained=True`` declares that the model it predicts with (``ctx.predict``) is, or
    holds, the :class:`tlbench.Classifier` that ``ctx.classifier(pretrained=True)`` built, trained:
    strategies built on fine-tuned weights (``wise_ft``, ``soup``) wrap only such strategies.
    ``init_options`` names its options that change that classifier's architecture or initialisation
    (``lp_ft``'s probe ``C``): a soup's ingredients, which must share one initialisation, may not vary
    them. ``check(options, strategies)``, if given, looks at the validated options before any cell
    runs, with the registry's strategies by name (``strategies(name)`` returns a plugin record or
    raises :class:`tlbench.UserError`), and raises a ``UserError`` naming the option: for a strategy
    that runs another (``ctx.run_strategy``).
    """

    name: str
    help: str
    options: type[Options]
    run: Callable[["CellContext", Any], Outcome]
    needs_target_domain: bool = False
    grid: dict[str, list] = field(default_factory=dict)
    #: ``{"lr": tlbench.contract.space.LogUniform(1e-5, 1e-2), ...}``: what a ``[search]`` with method
    #: ``random`` or ``tpe`` samples (each key an option of ``options``); empty: the grid is used
    space: dict[str, Any] = field(default_factory=dict)
    #: False: the strategy does not train in ``[train]`` optimizer steps (the linear probe's
    #: L-BFGS fit), so a search's pruner, whose budgets are steps, leaves it unpruned
    trains_steps: bool = True
    role: Role = "transfer"
    select_on: Literal["val", "target_val"] = "val"
    uses_label_fraction: bool = True
    finetunes_pretrained: bool = False
    init_options: tuple[str, ...] = ()
    #: the tasks (:mod:`tlbench.tasks`) it can train: on a dataset of another task its cells are
    #: skipped with the reason. A strategy that builds its model with ``ctx.classifier()`` and trains
    #: it with ``ctx.fit`` gets the dataset's task model and loss whatever the task: it declares
    #: ``tasks=ANY_TASK``
    tasks: tuple[str, ...] = ("classification",)
    check: Callable[[Any, Callable[[str], "StrategyPlugin"]], None] | None = None

    def __post_init__(self):
        if self.role not in typing.get_args(Role):
            raise ValueError(f"strategy {self.name!r}: role {self.role!r} is not one of {typing.get_args(Role)}")
        if self.select_on == "target_val" and self.role != "oracle":
            raise ValueError(f"strategy {self.name!r} selects on target validation (target labels): "
                             "declare role=\"oracle\"")
        for what, names in (("space", self.space), ("init_options", self.init_options)):
            unknown = sorted(set(names) - set(self.options.model_fields))
            if unknown:
                raise ValueError(f"strategy {self.name!r}: its {what} names {', '.join(unknown)}, which are not "
                                 f"among its options ({', '.join(self.options.model_fields)})")


@dataclass(frozen=True)
class ScorerPlugin:
    """A transferability score: ``score(features, labels, source_logits)`` -> float.

    ``features`` is ``N×D`` float64 (frozen features of the target training examples), ``labels``
    ``N`` ints in ``[0, C)``, ``source_logits`` ``N×Z`` (the backbone's pretrained head, e.g.
    ImageNet logits) or None. A pure function: no model, no training loop. Scorers that need
    source logits are not computed for backbones without a ``source_head``.
    """

    name: str
    help: str
    score: Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], float]
    needs_source_logits: bool = False
    higher_is_better: bool = True


@dataclass(frozen=True)
class ExecutorPlugin:
    """``run(session, options)`` runs cells anywhere it likes until ``session.next()`` gives
    None: it calls ``tlbench.run.worker.run_cell(spec, device)`` for each spec (in this process, a
    worker process, a Ray actor: only the plain-data spec crosses) and ``session.done(spec,
    record)`` in this process as each finishes (the store commits it there and then), or
    ``session.failed(spec, reason)`` when a worker died twice on it. ``options`` is the validated
    ``[executor]`` table. Ctrl-C propagates as KeyboardInterrupt."""

    name: str
    help: str
    options: type[Options]
    run: Callable[["Session", Any], None]
