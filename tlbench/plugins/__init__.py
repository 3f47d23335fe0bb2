"""The plugin machinery: hookspecs, plugin records, loading, the host, the registry, the listing.

Modules: executors, hookspecs, host, listing, loading, records, registry. This layer imports
``tlbench.contract``, ``tlbench.modalities``, ``tlbench.train`` and itself, never a layer above it:
the contracts in pyproject.toml, checked by tests/test_layers.py.

``tlbench.plugins`` was a module before the layout move (now :mod:`tlbench.plugins.loading`); its
names are still found here, with a DeprecationWarning, until 0.5.0.
"""
import importlib as _importlib
import warnings as _warnings

#: the old module's names -> the module that has them now
_MOVED = {
    'PluginInfo': 'tlbench.plugins.loading',
    '_INFOS': 'tlbench.plugins.loading',
    'infos_of': 'tlbench.plugins.loading',
    'load_host': 'tlbench.plugins.host',
    'load_registry': 'tlbench.plugins.host',
    'plugin_manager': 'tlbench.plugins.loading',
}


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _warnings.warn(f"tlbench.plugins.{name} is deprecated: import it from {_MOVED[name]} "
                   f"(tlbench.plugins was a module before the layout move; this name goes in 0.5.0)",
                   DeprecationWarning, stacklevel=2)
    return getattr(_importlib.import_module(_MOVED[name]), name)
