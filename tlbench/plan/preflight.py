"""The preflight: before any cell runs, look once at what the cells will need.

After the suite validates, :func:`preflight` visits each distinct dataset (plugin + options) and
each distinct backbone (plugin + options) among the cells that will run, and calls the plugin's
cheap ``check(options)`` (:class:`tlbench.DatasetPlugin`, :class:`tlbench.BackbonePlugin`): a
dataset's files, columns, labels and that every example decodes; a backbone's weights file, local
model directory or the hub when it needs one. A plugin without a ``check`` is checked by its first
``load(options)`` / ``build(options, True)`` (and ``encoder(options)``). A
:class:`~tlbench.UserError` raised there stops the run before the store is opened: one line, exit
status 2, no record written. ``--dry-run`` runs the same preflight, so a dry run that says ok means
the run will start. A user error that only a cell finds is marked by :func:`input_of` and stops
that dataset's (backbone's) cells in the controller (:class:`tlbench.run.runner.RunSession`).

Any other exception (a plugin's bug) is left to the cells, which record it as a failure as usual.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Literal

from tlbench.contract.errors import UserError
from tlbench.plugins.registry import Registry
from tlbench.contract.cells import Cell, canonical

__all__ = ["Checked", "Preflight", "preflight", "nothing_to_check", "input_of", "named", "same_classes"]


def nothing_to_check(options) -> None:
    """The ``check`` of a plugin whose data or weights come with an installed package (nothing
    outside it can be missing or malformed)."""


@dataclass(frozen=True)
class Checked:
    """One distinct dataset or backbone the preflight looked at, and how: its plugin's ``check``,
    or (a plugin without one) its ``load`` / ``build``."""

    kind: Literal["dataset", "backbone"]
    label: str
    how: Literal["check", "load"]


@dataclass
class Preflight:
    """What the preflight looked at."""

    checked: list[Checked] = field(default_factory=list)

    def summary(self) -> str:
        """e.g. ``"2 datasets, 1 backbone checked (1 by loading: no check)"``."""
        def many(n: int, word: str) -> str:
            return f"{n} {word}" + ("" if n == 1 else "s")
        kinds = [c.kind for c in self.checked]
        loaded = sum(c.how == "load" for c in self.checked)
        return (f"{many(kinds.count('dataset'), 'dataset')}, {many(kinds.count('backbone'), 'backbone')} checked"
                + (f" ({loaded} by loading: no check)" if loaded else ""))


def preflight(cells: Iterable[Cell], registry: Registry) -> Preflight:
    """Check every distinct dataset and backbone of ``cells`` (skipped cells need neither) once;
    raises the first :class:`UserError`, naming the suite entry it came from."""
    report = Preflight()
    seen: set[tuple[str, str]] = set()
    for cell in cells:
        if cell.skip_reason:
            continue
        references = cell.forgetting.reference if cell.forgetting else ()
        entries = [("dataset", cell.dataset), ("backbone", cell.backbone),
                   *(("dataset", e) for e in (*cell.dataset.ood, *references))]
        for kind, entry in entries:
            key = (kind, canonical(entry.config()))
            if key in seen:
                continue
            seen.add(key)
            report.checked.append(Checked(kind, entry.label, check_entry(kind, entry, registry)))
        if cell.dataset.ood and ("classes", canonical(cell.dataset.config())) not in seen:
            seen.add(("classes", canonical(cell.dataset.config())))
            check_ood_classes(cell.dataset, registry)
    return report


def check_ood_classes(dataset, registry: Registry) -> None:
    """A :class:`UserError` unless every out-of-distribution set of ``dataset`` has its classes (by
    name, in any order): both are loaded."""
    classes = registry.get("dataset", dataset.plugin).load(dataset.options).classes
    for entry in dataset.ood:
        try:
            same_classes(classes, registry.get("dataset", entry.plugin).load(entry.options).classes, entry)
        except UserError as exc:
            raise UserError(named("dataset", dataset, str(exc))) from None


def same_classes(classes: list[str], theirs: list[str], entry) -> None:
    """A :class:`UserError` naming the ood set ``entry`` unless its classes ``theirs`` are ``classes``
    (by name, in any order)."""
    differ = sorted(set(theirs) ^ set(classes))
    if differ:
        raise UserError(f"its ood set {entry.label!r} has other classes ({', '.join(differ[:5])}"
                        f"{' ...' if len(differ) > 5 else ''} in one and not the other); an "
                        "out-of-distribution test set must have the dataset's classes")


def check_entry(kind: str, entry, registry: Registry) -> str:
    """Check one dataset or backbone entry: its plugin's ``check``, else its ``load`` / ``build``.
    Returns how it was checked."""
    plugin = registry.get(kind, entry.plugin)
    try:
        if plugin.check is not None:
            plugin.check(entry.options)
            return "check"
        if kind == "dataset":
            plugin.load(entry.options)
        else:
            plugin.build(entry.options, True)
            if plugin.encoder is not None:
                plugin.encoder(entry.options)
        return "load"
    except UserError as exc:
        raise UserError(named(kind, entry, str(exc))) from None


def named(kind: str, entry, message: str) -> str:
    """``message`` prefixed by the suite entry it is about (``[[dataset]] reviews: ...``) unless
    it names it already."""
    return message if message.startswith((entry.label, entry.plugin)) else f"[[{kind}]] {entry.label}: {message}"


@contextmanager
def input_of(kind: Literal["dataset", "backbone"]):
    """Mark a :class:`UserError` raised inside as a fault of the cell's dataset or backbone (its
    ``input`` attribute): the worker records it in ``CellRecord.input_error`` and the controller
    stops handing out that dataset's (or backbone's) cells instead of storing a failure. Also a
    decorator: ``input_of("backbone")(plugin.build)(options, pretrained)``."""
    try:
        yield
    except UserError as exc:
        if getattr(exc, "input", None) is None:
            exc.input = kind
        raise
