"""A faulty plugin is isolated: one that fails to import is skipped with a warning naming it, and
a lifecycle hook that raises is warned about by name while the other plugins' hooks still run."""
from __future__ import annotations

import types

import pluggy
import pytest

import tlbench
import tlbench.plugins.loading as plugins_mod
from tlbench.plugins import hookspecs
from tlbench.contract.errors import UserError
from tlbench.plugins.host import Host
from tlbench.plugins.loading import plugin_manager


class BrokenEntryPoint:
    name, value, group = "broken_thing", "broken_thing_module", "tlbench"
    dist = types.SimpleNamespace(name="broken-dist", version="0.1")

    def load(self):
        raise ImportError("No module named 'torch_nonexistent'")


def test_a_plugin_that_fails_to_import_is_skipped_with_its_name(monkeypatch):
    real = plugins_mod.entry_points
    monkeypatch.setattr(plugins_mod, "entry_points", lambda group: [*real(group=group), BrokenEntryPoint()])
    with pytest.warns(UserWarning, match=r"plugin 'broken_thing' from broken-dist 0.1 failed to load"):
        pm, infos = plugin_manager()
    names = {i.name for i in infos}
    assert "broken_thing" not in names and {"finetune", "digits"} <= names  # the others load
    with pytest.raises(UserError, match=r"^plugin 'broken_thing' from broken-dist 0.1 failed to load: ImportError: "
                                        r"No module named 'torch_nonexistent' \(--strict-plugins\); fix or uninstall"):
        plugin_manager(strict=True)


def test_a_raising_lifecycle_hook_is_warned_by_name_and_the_others_run():
    calls = []

    class Tracker:
        @tlbench.hookimpl
        def tlbench_cell_finished(self, cell, record):
            calls.append(record["cell_id"])

    class Down:
        @tlbench.hookimpl
        def tlbench_cell_finished(self, cell, record):
            raise ConnectionError("tracker is down")

    pm = pluggy.PluginManager("tlbench")
    pm.add_hookspecs(hookspecs)
    pm.register(Tracker(), name="tracker")
    pm.register(Down(), name="down")
    with pytest.warns(UserWarning, match=r"plugin 'down' failed in tlbench_cell_finished: ConnectionError"):
        Host(pm).cell_finished(None, {"cell_id": "c1"})
    assert calls == ["c1"]
