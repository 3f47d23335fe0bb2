"""What crosses between the controller and an executor: a :class:`CellSpec` (plain data: the
suite's text, the cell's id, the plugin modules) and the :class:`Session` protocol an executor's
``run(session, options)`` is handed (``tlbench.Session``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.contract.results import CellRecord

__all__ = ["CellSpec", "Session"]


@dataclass(frozen=True)
class CellSpec:
    """Everything a worker needs to run one cell, as plain data (picklable, JSON-able)."""

    suite_path: str
    suite_text: str
    cell_id: str
    plugins: tuple[str, ...] = ()
    results_dir: str = ""
    group: str = ""
    #: a search trial's options (``Cell.variation``): its cell is not in the suite's expansion
    variation: dict | None = None



class Session(Protocol):
    """What an executor's ``run(session, options)`` is handed (the controller's
    :class:`tlbench.run.runner.Session` is one; a test may pass its own). Thread-safe."""

    #: how many cells this run may hand out (start no more workers than that)
    total: int

    def next(self, prefer: str | None = None) -> CellSpec | None:
        """The next cell to run, claimed in the store, preferring the group ``prefer`` (the
        group of the worker's last cell: its caches); None when none is left."""

    def done(self, spec: CellSpec, record: CellRecord) -> None:
        """Store the record a worker returned for ``spec``."""

    def failed(self, spec: CellSpec, reason: str) -> None:
        """Record ``spec`` as failed without a record from a worker (its worker died twice)."""
