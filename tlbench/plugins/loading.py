"""The plugin manager: built-ins and third-party plugins through the ``tlbench`` entry-point
group, then modules named with ``--plugin``. A plugin that fails to import is reported with a
warning naming it and its distribution; ``strict=True`` re-raises instead.

Each entry point registers with pluggy under a name qualified by its distribution
(``mydist:bitfit``, :attr:`PluginInfo.registered`), so a third-party package whose entry point is
named like a built-in module (``bitfit``, ``lora``, ``ray``) loads beside it instead of ending
every command in pluggy's "Plugin name already registered"; the host shows the entry point's own
name, and records of one name from two plugins follow the registry's ``distribution:name`` rule."""
from __future__ import annotations

import importlib
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

import pluggy

from tlbench.plugins import hookspecs
from tlbench.contract.errors import UserError


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its entry-point ``name`` (or ``--plugin`` module), the module, where it
    came from, and the name it is ``registered`` under with pluggy (``distribution:name`` for an
    entry point)."""
    name: str
    module: str
    distribution: str
    version: str
    registered: str = ""

    def __post_init__(self):
        if not self.registered:
            object.__setattr__(self, "registered", self.name)


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
        registered = f"{dist}:{ep.name}"
        pm.register(module, name=registered)
        infos.append(PluginInfo(ep.name, ep.value, dist, version, registered))
    for name in extra_modules:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # ImportError, or an empty / relative name, or the module's own fault
            why = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"--plugin {name}: cannot import it ({why}); give an importable module name") from None
        if pm.is_registered(module):
            shown = next((i.name for i in infos if i.registered == pm.get_name(module)), pm.get_name(module))
            raise UserError(f"--plugin {name}: already loaded as plugin {shown!r}; "
                            f"leave out --plugin {name}")
        try:
            pm.register(module, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise UserError(f"--plugin {name}: cannot register it ({str(exc).splitlines()[0]})") from None
        infos.append(PluginInfo(name, name, "--plugin", ""))
    pm.check_pending()
    _INFOS[pm] = infos
    return pm, infos


_INFOS: "weakref.WeakKeyDictionary[pluggy.PluginManager, list[PluginInfo]]" = weakref.WeakKeyDictionary()


def infos_of(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Where each plugin of a manager made by :func:`plugin_manager` came from (else: nothing known)."""
    return _INFOS.get(pm, [])
