"""What crosses between the controller and an executor: a :class:`CellSpec` (plain data: the
resolved cell, the plugin modules, the results folder) and the :class:`Session` protocol an
executor's ``run(session, options)`` is handed (``tlbench.Session``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tlbench.contract.cells import Cell

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.contract.results import CellRecord

__all__ = ["CellSpec", "Session"]


@dataclass(frozen=True)
class CellSpec:
    """Everything a worker needs to run one cell, as plain picklable data: the resolved cell (a
    worker parses no suite), the plugin modules that provide its plugins' code, the results folder
    (its feature cache beside the store; "" for none) and whether to measure the deployed model."""

    cell: Cell
    plugins: tuple[str, ...] = ()
    results_dir: str = ""
    measure_deployment: bool = True

    @property
    def cell_id(self) -> str:
        return self.cell.id

    @property
    def group(self) -> str:
        """The cell's group (:attr:`tlbench.Cell.group`): a worker that ran one of it has its caches."""
        return self.cell.group


class Session(Protocol):
    """What an executor's ``run(session, options)`` is handed (the controller's
    :class:`tlbench.run.runner.RunSession` is one; a test may pass its own). Thread-safe."""

    #: how many cells this run may hand out (start no more workers than that)
    total: int

    def next(self, prefer: str | None = None) -> CellSpec | None:
        """The next cell to run, claimed in the store, preferring the group ``prefer`` (the
        group of the worker's last cell: its caches); None when none is left."""

    def done(self, spec: CellSpec, record: CellRecord) -> None:
        """Store the record a worker returned for ``spec``."""

    def failed(self, spec: CellSpec, reason: str) -> None:
        """Record ``spec`` as failed without a record from a worker (its worker died twice)."""
