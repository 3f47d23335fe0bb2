"""Collect the records every plugin yields, reject duplicate names, look names up."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import pluggy

from tlbench.errors import UserError

KINDS = {"backbone": "tlbench_backbones", "dataset": "tlbench_datasets",
         "strategy": "tlbench_strategies", "executor": "tlbench_executors"}


class DuplicateName(Exception):
    """Two plugins register the same name."""


@dataclass
class Registry:
    """``records[kind][name] = record`` and ``sources[kind][name] = plugin name``."""

    records: dict[str, dict] = field(default_factory=lambda: {k: {} for k in KINDS})
    sources: dict[str, dict] = field(default_factory=lambda: {k: {} for k in KINDS})

    @classmethod
    def collect(cls, pm: pluggy.PluginManager) -> "Registry":
        registry = cls()
        for kind, hook_name in KINDS.items():
            for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):  # registration order
                for record in impl.function() or []:
                    registry.add(kind, record, impl.plugin_name)
        return registry

    def add(self, kind: str, record, source: str) -> None:
        if record.name in self.records[kind]:
            raise DuplicateName(f"{kind} {record.name!r} is registered twice: by plugin "
                                f"{self.sources[kind][record.name]!r} and by plugin {source!r}; "
                                "uninstall or rename one of them")
        self.records[kind][record.name] = record
        self.sources[kind][record.name] = source

    def get(self, kind: str, name: str, where: str = ""):
        """The record called ``name``, or a UserError with a did-you-mean and the known names."""
        try:
            return self.records[kind][name]
        except KeyError:
            known = sorted(self.records[kind])
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(f"{where}unknown {kind} plugin {name!r}; {hint}installed: {', '.join(known)}") from None
