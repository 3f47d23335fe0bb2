"""The plugin host: the one object through which tlbench calls a hook.

A :class:`Host` holds the plugin manager, where each plugin came from and the :class:`Registry`
of their records. Its typed methods are the only hook calls in tlbench: :meth:`Host.records` /
:meth:`Host.get` for what plugins provide, and :meth:`Host.suite_started`,
:meth:`Host.cell_started`, :meth:`Host.cell_finished`, :meth:`Host.suite_finished` for the
lifecycle notifications (each implementation guarded: one that raises is a warning naming its
plugin, and the others and the sweep go on).

Records are collected plugin by plugin through pluggy's own hook caller
(``subset_hook_caller``), so each record is credited to the plugin it came from and a plugin
whose hook raises is reported by name (a warning; ``strict``: a :class:`UserError`) while the
others still count. The results then pass through the hook's wrappers
(``@tlbench.hookimpl(wrapper=True)``), one at a time, innermost first, each as pluggy nests it
around the collected results (``HookCaller.call_extra``); records a wrapper adds are credited to it.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from tlbench.contract.errors import UserError
from tlbench.plugins.loading import PluginInfo, infos_of, plugin_manager
from tlbench.plugins.registry import KINDS, Registry

if TYPE_CHECKING:  # pragma: no cover
    from tlbench.contract.cells import Cell
    from tlbench.contract.results import CellRecord

__all__ = ["Host", "load_host", "load_registry"]


class Host:
    """The plugin manager ``pm``, its plugins' ``infos`` and their records (``registry``)."""

    def __init__(self, pm: pluggy.PluginManager, infos: Sequence[PluginInfo] | None = None, strict: bool = False,
                 registry: Registry | None = None):
        self.pm, self.strict = pm, strict
        self.infos = list(infos_of(pm) if infos is None else infos)
        if registry is not None:
            self.__dict__["registry"] = registry  # already collected

    @classmethod
    def of(cls, host_or_pm: "Host | pluggy.PluginManager", registry: Registry | None = None) -> "Host":
        """``host_or_pm`` if it is a host, else the host of that plugin manager (and ``registry``)."""
        return host_or_pm if isinstance(host_or_pm, Host) else cls(host_or_pm, registry=registry)

    @cached_property
    def registry(self) -> Registry:
        """Every plugin's records, collected on first use."""
        return self.collect()

    @classmethod
    def load(cls, plugins: Sequence[str] = (), strict: bool = False) -> "Host":
        """The installed plugins (entry-point group ``tlbench``) and the modules ``plugins``."""
        pm, infos = plugin_manager(list(plugins), strict=strict)
        return cls(pm, infos, strict)

    # -- what plugins provide ------------------------------------------------------------------

    def records(self, kind: str) -> dict[str, Any]:
        """Every record of ``kind`` (``"strategy"``, ``"scorer"``, ...) by the name it is listed
        under (a clashing name: its qualified names)."""
        return self.registry.records[kind]

    def get(self, kind: str, name: str, where: str = ""):
        """The record ``name`` (plain or ``distribution:name``) of ``kind``; else a one-line UserError."""
        return self.registry.get(kind, name, where)

    # -- lifecycle notifications ---------------------------------------------------------------

    def suite_started(self, suite_name: str, results_dir: Path, cells: list[Cell]) -> None:
        self._notify("tlbench_suite_started", suite_name=suite_name, results_dir=results_dir, cells=cells)

    def cell_started(self, cell: Cell) -> None:
        self._notify("tlbench_cell_started", cell=cell)

    def cell_finished(self, cell: Cell, record: CellRecord) -> None:
        self._notify("tlbench_cell_finished", cell=cell, record=record)

    def suite_finished(self, suite_name: str, results_dir: Path, status: str) -> None:
        self._notify("tlbench_suite_finished", suite_name=suite_name, results_dir=results_dir, status=status)

    # -- the machinery -------------------------------------------------------------------------

    def collect(self) -> Registry:
        """Every plugin's records (see the module docstring)."""
        registry = Registry()
        distribution = {i.registered: i.name if i.distribution == "--plugin" else i.distribution
                        for i in self.infos}
        for kind, hook_name in KINDS.items():
            results: list = []
            owner: dict[int, str] = {}  # id(record) -> the plugin it came from
            for plugin_name, result, exc in self._each(hook_name):
                if exc is not None:
                    self._failed(plugin_name, hook_name, exc)
                    continue
                _credit(result, owner, plugin_name)
                results.extend(result)
            for impl in self._wrappers(hook_name):  # innermost first
                try:
                    results = self._through_wrapper(impl, hook_name, results)
                except Exception as exc:
                    self._failed(impl.plugin_name, hook_name, exc)
                    continue
                _credit(results, owner, impl.plugin_name)
            for records in results:
                for record in records or ():
                    source = owner[id(record)]
                    registry.add(kind, record, self._shown(source), distribution.get(source))
        return registry

    def _each(self, hook_name: str, include_wrappers: bool = False,
              **kwargs) -> Iterator[tuple[str, list, Exception | None]]:
        """Each plugin's implementation called on its own, through pluggy's hook caller, in pluggy's
        call order: ``(plugin name, results, exception)``. Wrappers are skipped, or with
        ``include_wrappers`` called alone (around nothing). One failure never stops the others."""
        plugins = self.pm.get_plugins()
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            if _is_wrapper(impl) and not include_wrappers:
                continue
            caller = self.pm.subset_hook_caller(hook_name, remove_plugins=[p for p in plugins if p is not impl.plugin])
            results, error = [], None
            try:
                results = caller(**kwargs)
            except Exception as exc:
                error = exc
            yield impl.plugin_name, results, error

    def _wrappers(self, hook_name: str) -> list:
        """The hook's wrapper implementations (``wrapper=True`` or ``hookwrapper=True``), innermost first."""
        return [impl for impl in getattr(self.pm.hook, hook_name).get_hookimpls() if _is_wrapper(impl)]

    def _through_wrapper(self, impl, hook_name: str, results: list) -> list:
        """``results`` (one entry per implementation, in call order) through one wrapper, as
        pluggy's hook caller nests it: the wrapper's plugin alone, with the results as extra
        implementations (``call_extra`` calls the last one given first: hence reversed)."""
        others = [p for p in self.pm.get_plugins() if p is not impl.plugin]
        caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
        return caller.call_extra([_returning(result) for result in reversed(results)], {})

    def _shown(self, plugin_name: str) -> str:
        """A plugin as users name it: its entry point's name (pluggy knows it as
        ``distribution:name``)."""
        return next((i.name for i in self.infos if i.registered == plugin_name), plugin_name)

    def _notify(self, hook_name: str, **kwargs) -> None:
        """Call a lifecycle hook's implementations one by one (wrappers alone), each guarded."""
        for plugin_name, _, exc in self._each(hook_name, include_wrappers=True, **kwargs):
            if exc is not None:  # a tracker that is down must not take the sweep with it
                warnings.warn(f"plugin {self._shown(plugin_name)!r} failed in {hook_name}: "
                              f"{type(exc).__name__}: {exc}",
                              stacklevel=3)

    def _failed(self, plugin_name: str, hook_name: str, exc: Exception) -> None:
        message = f"plugin {self._shown(plugin_name)!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
        if self.strict:
            raise UserError(f"{message} (--strict-plugins)") from exc
        warnings.warn(f"{message}; its records are skipped", stacklevel=4)


def _is_wrapper(impl) -> bool:
    return bool(impl.wrapper or impl.hookwrapper)


def _credit(results: list, owner: dict[int, str], plugin_name: str) -> None:
    for records in results:
        for record in records or ():
            owner.setdefault(id(record), plugin_name)


def _returning(value):
    def implementation():
        return value
    return implementation


def load_host(extra_modules=(), strict: bool = False):
    """The :class:`tlbench.plugins.host.Host` of every installed plugin and of ``extra_modules``, quietly
    (what a worker rebuilds from a cell spec's plain data: the controller already reported broken
    plugins)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Host.load(list(extra_modules), strict=strict)


def load_registry(extra_modules=(), strict: bool = False):
    """The registry of :func:`load_host` (``strict`` kept: a broken plugin is a UserError)."""
    return load_host(extra_modules, strict).registry
