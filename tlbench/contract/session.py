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
    """Everything a worker needs to run one cell, as plain picklable data: the resolved cell as
    values (:meth:`tlbench.Cell.to_plain`: a worker parses no suite, and needs no plugin's option
    class by name), its id and group (:attr:`tlbench.Cell.group`: a worker that ran one of the group
    has its caches), the plugin modules that provide its plugins' code, the results folder (its
    feature cache beside the store; "" for none) and whether to measure the deployed model."""

    cell: dict
    cell_id: str
    group: str
    plugins: tuple[str, ...] = ()
    results_dir: str = ""
    measure_deployment: bool = True

    @classmethod
    def of(cls, cell: Cell, plugins: tuple[str, ...] = (), results_dir: str = "",
           measure_deployment: bool = True) -> "CellSpec":
        return cls(cell.to_plain(), cell.id, cell.group, tuple(plugins), results_dir, measure_deployment)

    def resolve(self, options_of) -> Cell:
        """The cell, its options validated by ``options_of(kind, plugin)`` (a registry's option classes);
        a ValueError if that gives another id (the plugin changed between controller and worker)."""
        cell = Cell.from_plain(self.cell, options_of)
        if cell.id != self.cell_id:
            raise ValueError(f"cell {self.cell_id} resolves to {cell.id} in this worker: are the controller and "
                             "the worker running different versions of its plugins?")
        return cell


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
