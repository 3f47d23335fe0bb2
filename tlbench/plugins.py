"""The plugin manager: built-ins and third-party plugins through the ``tlbench`` entry-point
group, then modules named with ``--plugin``. A plugin that fails to import is reported with a
warning naming it and its distribution; ``strict=True`` re-raises instead."""
from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import SimpleNamespace

import pluggy

from tlbench import hookspecs
from tlbench.errors import UserError


@dataclass(frozen=True)
class PluginInfo:
    name: str
    module: str
    distribution: str
    version: str


def plugin_manager(extra_modules: Sequence[str] = (), strict: bool = False) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """A checked plugin manager and where each of its plugins came from."""
    pm = pluggy.PluginManager("tlbench")
    pm.add_hookspecs(hookspecs)
    infos = []
    for ep in entry_points(group="tlbench"):
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        try:
            module = ep.load()
        except Exception as exc:  # a broken third-party plugin must not take the tool down
            message = f"plugin {ep.name!r} from {dist} {version} failed to load: {type(exc).__name__}: {exc}"
            if strict:
                raise UserError(f"{message.splitlines()[0]} (--strict-plugins); fix or uninstall {dist}") from None
            warnings.warn(f"{message}; it is skipped", stacklevel=2)
            continue
        if pm.is_registered(module):
            continue
        pm.register(module, name=ep.name)
        infos.append(PluginInfo(ep.name, ep.value, dist, version))
    for name in extra_modules:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # ImportError, or an empty / relative name, or the module's own fault
            why = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"--plugin {name}: cannot import it ({why}); give an importable module name") from None
        if pm.is_registered(module):
            raise UserError(f"--plugin {name}: already loaded as plugin {pm.get_name(module)!r}; "
                            f"leave out --plugin {name}")
        try:
            pm.register(module, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise UserError(f"--plugin {name}: cannot register it ({str(exc).splitlines()[0]})") from None
        infos.append(PluginInfo(name, name, "--plugin", ""))
    pm.check_pending()
    return pm, infos


def _is_wrapper(impl) -> bool:
    return bool(impl.wrapper or impl.hookwrapper)


def call_each(pm: pluggy.PluginManager, hook_name: str, include_wrappers: bool = False,
              **kwargs) -> Iterator[tuple[str, list, Exception | None]]:
    """Call each plugin's implementation of a hook on its own, through pluggy's hook caller
    (``subset_hook_caller`` without the other plugins), in pluggy's call order. Yields
    ``(plugin name, results, exception)``: ``results`` is the hook caller's list (empty when the
    implementation returned None or raised). Wrapper implementations are skipped, or with
    ``include_wrappers`` called alone (around nothing).

    One plugin's failure never stops the others: the caller decides how to report it."""
    plugins = pm.get_plugins()
    for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):
        if _is_wrapper(impl) and not include_wrappers:
            continue
        caller = pm.subset_hook_caller(hook_name, remove_plugins=[p for p in plugins if p is not impl.plugin])
        results, error = [], None
        try:
            results = caller(**kwargs)
        except Exception as exc:
            error = exc
        yield impl.plugin_name, results, error


def wrappers(pm: pluggy.PluginManager, hook_name: str) -> list:
    """The hook's wrapper implementations (``wrapper=True`` or ``hookwrapper=True``), innermost first."""
    return [impl for impl in getattr(pm.hook, hook_name).get_hookimpls() if _is_wrapper(impl)]


def through_wrapper(impl, hook_name: str, results: list, **kwargs) -> list:
    """``results`` (the hook caller's list, one entry per implementation in call order) passed
    through one wrapper implementation, exactly as pluggy's hook caller would wrap them."""
    inner = pluggy.PluginManager("tlbench")
    inner.add_hookspecs(hookspecs)
    for i, result in enumerate(reversed(results)):  # pluggy calls the last registered first
        inner.register(SimpleNamespace(**{hook_name: _returning(result)}), name=f"result-{i}")
    # impl.function carries its plugin's @hookimpl(wrapper=True) marking: registered as it is
    inner.register(SimpleNamespace(**{hook_name: impl.function}), name=impl.plugin_name)
    return getattr(inner.hook, hook_name)(**kwargs)


def _returning(value):
    @pluggy.HookimplMarker("tlbench")
    def implementation():
        return value
    return implementation


def notify(pm: pluggy.PluginManager, hook_name: str, **kwargs) -> None:
    """Call a lifecycle hook's implementations one by one, each guarded: one that raises is
    reported as a warning naming its plugin, and the others (and the sweep) go on."""
    for plugin_name, _, exc in call_each(pm, hook_name, include_wrappers=True, **kwargs):
        if exc is not None:  # a tracker that is down must not take the sweep with it
            warnings.warn(f"plugin {plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}",
                          stacklevel=2)


def load_registry(extra_modules=(), strict: bool = False):
    """The registry of every installed plugin and of ``extra_modules`` (what a worker rebuilds
    from a cell spec's plain data)."""
    from tlbench.registry import Registry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the controlling process already reported broken plugins
        pm, _ = plugin_manager(list(extra_modules), strict=strict)
    return Registry.collect(pm)
