"""The layers hold: import-linter's contracts in pyproject.toml pass (docs/architecture.md), tlbench
never imports a deprecated path, and every 0.3 path still imports, as the very same module as its
new path, with one DeprecationWarning naming that path."""
import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tlbench import _moved

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}


def test_the_import_linter_contracts_hold():
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and " kept" in result.stdout, result.stdout


def test_tlbench_never_imports_a_deprecated_path():
    """Every module of every layer, every public name and every built-in plugin loaded: no shim ran
    (import-linter sees import statements; this also sees string imports such as tlbench's PEP 562)."""
    code = f"""
import pkgutil, sys, importlib, tlbench
for info in pkgutil.walk_packages(tlbench.__path__, "tlbench."):
    name = info.name
    if name in {sorted(_moved.MOVED)!r} or name.startswith(("tlbench.builtins.executors.ray", "tlbench.trackers")):
        continue
    try:
        importlib.import_module(name)
    except ImportError:  # an optional dependency a module needs (ray, mlflow, ...)
        pass
[getattr(tlbench, name) for name in tlbench.__all__]
from tlbench.plugins.host import load_registry
load_registry()
print(sorted(set({sorted(_moved.MOVED)!r}) & set(sys.modules)))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_an_old_path_is_the_new_module_with_one_deprecation_warning(old):
    new_name = _moved.MOVED[old]
    new = importlib.import_module(new_name)
    saved = sys.modules.pop(old, None)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
            again = importlib.import_module(old)
    finally:
        if saved is not None:
            sys.modules[old] = saved
    assert module is new and again is new
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(messages) == 1 and new_name in messages[0] and _moved.REMOVED_IN in messages[0], messages
    for name in dir(new):  # the same objects by either path (it is the same module)
        assert getattr(module, name) is getattr(new, name)
    parent, _, leaf = old.rpartition(".")
    exec(f"from {parent} import {leaf} as via_from", {})  # `from tlbench import records` works too


def test_an_old_path_warns_at_the_importing_line():
    old = "tlbench.records"
    saved = sys.modules.pop(old, None)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import tlbench.records  # noqa: F401
    finally:
        if saved is not None:
            sys.modules[old] = saved
    [warning] = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert warning.filename == __file__


@pytest.mark.parametrize("name", ["plugin_manager", "infos_of", "PluginInfo", "load_registry", "load_host"])
def test_the_old_plugins_module_names_are_forwarded_with_a_deprecation_warning(name):
    import tlbench.plugins
    from tlbench.plugins import host, loading
    with pytest.warns(DeprecationWarning, match=rf"tlbench\.plugins\.{name} is deprecated.*{_moved.REMOVED_IN}"):
        value = getattr(tlbench.plugins, name)
    assert value is getattr(host if hasattr(host, name) and name not in vars(loading) else loading, name)
