"""The plugin contract. Every hook is called with keyword arguments and prefixed ``tlbench_``.

A plugin is a module (or object) with functions marked ``@tlbench.hookimpl`` whose names are
those below. Plugins are found through the ``tlbench`` entry-point group (built-ins use the same
group in tlbench's own ``pyproject.toml``) or named with ``--plugin module``.

Example, a complete dataset plugin::

    import torch, tlbench

    class Options(tlbench.Options):
        n: int = 100

    def load(options):
        x = torch.randint(0, 255, (options.n, 3, 8, 8), dtype=torch.uint8)
        y = torch.arange(options.n) % 2
        return tlbench.LoadedDataset(["even", "odd"], {"all": tlbench.Split(x, y)})

    @tlbench.hookimpl
    def tlbench_datasets():
        return [tlbench.DatasetPlugin("noise", "random images", Options, load)]
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.plugins.records import BackbonePlugin, DatasetPlugin, ExecutorPlugin, ScorerPlugin, StrategyPlugin
    from tlbench.contract.cells import Cell
    from tlbench.contract.results import CellRecord

hookspec = pluggy.HookspecMarker("tlbench")


@hookspec
def tlbench_backbones() -> Iterable[BackbonePlugin]:
    """Return a list of :class:`tlbench.BackbonePlugin`.

    ``build(options, pretrained)`` returns a :class:`tlbench.contract.backbone.Backbone`: an ``nn.Module``
    whose ``forward`` maps ``prepare(raw_batch)`` to features ``(B, feature_dim)``. It must load
    weights with ``weights_only=True`` or safetensors, and give the same architecture randomly
    initialised when ``pretrained`` is false.
    """


@hookspec
def tlbench_datasets() -> Iterable[DatasetPlugin]:
    """Return a list of :class:`tlbench.DatasetPlugin`.

    ``load(options)`` returns a :class:`tlbench.LoadedDataset`. It must be deterministic: the
    core derives the train/val/test split and label-fraction subsets from it with fixed seeds.
    A missing local file is a :class:`tlbench.contract.errors.UserError` naming the path.
    """


@hookspec
def tlbench_strategies() -> Iterable[StrategyPlugin]:
    """Return a list of :class:`tlbench.StrategyPlugin`.

    ``run(ctx, options)`` trains using only ``ctx.data["train"]`` labels (plus unlabelled
    ``ctx.data["target_train"]`` inputs if ``needs_target_domain``), selects nothing on test,
    and returns a :class:`tlbench.Outcome` with logits for every split in ``ctx.eval_splits``.
    Raising :class:`tlbench.contract.errors.Diverged` records the cell as ``diverged``.
    """


@hookspec
def tlbench_executors() -> Iterable[ExecutorPlugin]:
    """Return a list of :class:`tlbench.ExecutorPlugin`: ways to run a list of cells
    (in this process, worker processes, a Ray cluster)."""


@hookspec
def tlbench_scorers() -> Iterable[ScorerPlugin]:
    """Return a list of :class:`tlbench.ScorerPlugin`: transferability scores computed from frozen
    features (and the backbone's source-task logits) before any fine-tuning."""


# Lifecycle notifications, for trackers and loggers. They are called in the controlling process
# only (never in a worker), each implementation guarded: one that raises is reported with its
# plugin's name and the sweep goes on.

@hookspec
def tlbench_suite_started(suite_name: str, results_dir: Path, cells: list[Cell]) -> None:
    """A run of a suite begins; ``cells`` are the cells it will run."""


@hookspec
def tlbench_cell_started(cell: Cell) -> None:
    """A cell is handed to a worker, with its :class:`tlbench.Cell`."""


@hookspec
def tlbench_cell_finished(cell: Cell, record: CellRecord) -> None:
    """A cell's record (a :class:`tlbench.CellRecord`, see docs/reference/results.md) is stored."""


@hookspec
def tlbench_suite_finished(suite_name: str, results_dir: Path, status: str) -> None:
    """A run of a suite ends: ``status`` is ``"ok"``, ``"failed"`` (some cell failed or diverged)
    or ``"interrupted"`` (Ctrl-C or SIGTERM: close your runs; finished cells are stored).
    Called after results.csv and the report are written, so a tracker can log them."""
