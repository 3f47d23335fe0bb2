"""The records every plugin yields, by kind and name; qualified names when two plugins clash.

Every record is reachable by its qualified name ``distribution:name`` (``tlbench:finetune``; a
``--plugin`` module qualifies by its module name). A name only one plugin registers is also
reachable plainly (``finetune``); a name two plugins register is not: using it is a one-line
error listing both qualified names, so a new built-in never breaks a suite that names a
third-party plugin's record by its qualified name, and every other name keeps working.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from tlbench.contract.errors import UserError

KINDS = {"backbone": "tlbench_backbones", "dataset": "tlbench_datasets",
         "strategy": "tlbench_strategies", "executor": "tlbench_executors", "scorer": "tlbench_scorers"}


class DuplicateName(Exception):
    """One plugin registers the same name twice."""


def _kinds() -> dict[str, dict]:
    return {k: {} for k in KINDS}


@dataclass
class Registry:
    """``records[kind][key] = record`` and ``sources[kind][key] = plugin name``, where ``key`` is
    the record's name, or its qualified name when another plugin registers that name too
    (``clashes[kind][name]`` then lists the qualified names). ``aliases[kind][qualified] = key``
    for every record."""

    records: dict[str, dict] = field(default_factory=_kinds)
    sources: dict[str, dict] = field(default_factory=_kinds)
    clashes: dict[str, dict[str, list[str]]] = field(default_factory=_kinds)
    aliases: dict[str, dict[str, str]] = field(default_factory=_kinds)

    def add(self, kind: str, record, source: str, distribution: str | None = None) -> None:
        """Add ``record`` of plugin ``source`` (from ``distribution``, default: the plugin's name)."""
        name = record.name
        qualified = f"{distribution or source}:{name}"
        if qualified in self.aliases[kind]:  # two plugins of one distribution: qualify by plugin
            if self.sources[kind][self.aliases[kind][qualified]] == source:
                raise DuplicateName(f"{kind} {name!r} is registered twice by plugin {source!r}; rename one of them")
            qualified = f"{source}:{name}"
        if name in self.records[kind]:  # the second plugin with this name: both become qualified
            first = next(q for q, key in self.aliases[kind].items() if key == name)
            self._move(kind, name, first)
            self.clashes[kind][name] = [first]
        if name in self.clashes[kind]:
            self.clashes[kind][name].append(qualified)
            key = qualified
        else:
            key = name
        self.records[kind][key], self.sources[kind][key] = record, source
        self.aliases[kind][qualified] = key

    def _move(self, kind: str, key: str, new_key: str) -> None:
        self.records[kind][new_key] = self.records[kind].pop(key)
        self.sources[kind][new_key] = self.sources[kind].pop(key)
        self.aliases[kind] = {q: new_key if k == key else k for q, k in self.aliases[kind].items()}

    def qualified_name(self, kind: str, key: str) -> str:
        """The qualified name of the record listed as ``key``."""
        return next(q for q, k in self.aliases[kind].items() if k == key)

    def get(self, kind: str, name: str, where: str = ""):
        """The record called ``name`` (plain or qualified), or a UserError: a name two plugins
        register lists both qualified names; an unknown one gives a did-you-mean and the known names."""
        if name in self.records[kind]:
            return self.records[kind][name]
        if name in self.aliases[kind]:
            return self.records[kind][self.aliases[kind][name]]
        if name in self.clashes[kind]:
            both = self.clashes[kind][name]
            sources = " and ".join(repr(self.sources[kind][q]) for q in both)
            choices = " or ".join(f'"{q}"' for q in both)
            raise UserError(f"{where}{kind} {name!r} is registered twice (by plugins {sources}); "
                            f"name one: plugin = {choices}")
        known = sorted(self.records[kind])
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UserError(f"{where}unknown {kind} plugin {name!r}; {hint}installed: {', '.join(known)}")
