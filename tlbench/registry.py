"""Collect the records every plugin yields, reject duplicate names, look names up."""
from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field

import pluggy

from tlbench.errors import UserError
from tlbench.plugins import call_each, through_wrapper, wrappers

KINDS = {"backbone": "tlbench_backbones", "dataset": "tlbench_datasets",
         "strategy": "tlbench_strategies", "executor": "tlbench_executors", "scorer": "tlbench_scorers"}


class DuplicateName(Exception):
    """Two plugins register the same name."""


@dataclass
class Registry:
    """``records[kind][name] = record`` and ``sources[kind][name] = plugin name``."""

    records: dict[str, dict] = field(default_factory=lambda: {k: {} for k in KINDS})
    sources: dict[str, dict] = field(default_factory=lambda: {k: {} for k in KINDS})

    @classmethod
    def collect(cls, pm: pluggy.PluginManager, strict: bool = False) -> "Registry":
        """Every plugin's records, each hook called through pluggy's hook caller.

        Each plugin's implementation is called on its own, so every record is known by the plugin
        it came from and a plugin whose hook raises is reported by name (a warning; ``strict``:
        a :class:`UserError`) while the others still count. The results then pass through the
        hook's wrappers (``@tlbench.hookimpl(wrapper=True)``) as pluggy nests them, so a wrapper
        can filter, change or add records; the ones it adds are credited to it."""
        registry = cls()
        for kind, hook_name in KINDS.items():
            results: list = []
            owner: dict[int, str] = {}  # id(record) -> the plugin it came from
            for plugin_name, result, exc in call_each(pm, hook_name):
                if exc is not None:
                    _failed(plugin_name, hook_name, exc, strict)
                    continue
                for records in result:
                    for record in records or ():
                        owner.setdefault(id(record), plugin_name)
                results.extend(result)
            for impl in wrappers(pm, hook_name):  # innermost first
                try:
                    results = through_wrapper(impl, hook_name, results)
                except Exception as exc:
                    _failed(impl.plugin_name, hook_name, exc, strict)
                    continue
                for records in results:
                    for record in records or ():
                        owner.setdefault(id(record), impl.plugin_name)
            for records in results:
                for record in records or ():
                    registry.add(kind, record, owner[id(record)])
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


def _failed(plugin_name: str, hook_name: str, exc: Exception, strict: bool) -> None:
    message = f"plugin {plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
    if strict:
        raise UserError(f"{message} (--strict-plugins)") from exc
    warnings.warn(f"{message}; its records are skipped", stacklevel=3)
