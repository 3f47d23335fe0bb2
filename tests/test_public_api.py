"""Everything a plugin author annotates is importable from ``tlbench`` itself."""
import importlib.util
import inspect
import re
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

import tlbench
from tlbench.contract import backbone
from tlbench.train import context
from tlbench.plugins import hookspecs, records
from tlbench.modalities import image
from tlbench.testing import tiny_suite

from helpers.docs import page, python_blocks

ROOT = Path(__file__).parent.parent
PUBLIC = {name: getattr(tlbench, name) for name in tlbench.__all__}


def plugin_examples() -> dict[str, str]:
    """The Python a plugin author copies: docs/writing-plugins.md (hooks, wrappers, the
    conformance kit), the example package and the hookspecs' docstring."""
    sources = {"docs/writing-plugins.md": "\n".join(python_blocks(page("writing-plugins.md"))),
               "hookspecs": hookspecs.__doc__}
    for path in (ROOT / "plugins/tlbench-example").rglob("*.py"):
        sources[str(path.relative_to(ROOT))] = path.read_text()
    return sources


def test_all_names_resolve():
    assert len(set(tlbench.__all__)) == len(tlbench.__all__)
    missing = [name for name in tlbench.__all__ if not hasattr(tlbench, name)]
    assert not missing


@pytest.mark.parametrize("where", list(plugin_examples()))
def test_names_in_plugin_examples_are_public(where):
    text = plugin_examples()[where]
    used = set(re.findall(r"\btlbench\.([A-Za-z_]\w*)\b(?!\.\w)", text))
    for names in re.findall(r"^from tlbench import \(?([\w, \n]+)\)?", text, flags=re.M):
        used |= {n.strip() for n in names.split(",") if n.strip()}
    used = {name for name in used if importlib.util.find_spec(f"tlbench.{name}") is None}  # not submodules
    if where in ("docs/writing-plugins.md", "hookspecs") or where.endswith("__init__.py"):
        assert used, f"{where}: no tlbench names found (the pattern is stale?)"
    assert sorted(used - set(tlbench.__all__)) == [], f"{where} uses names not in tlbench.__all__"


@pytest.mark.parametrize("hook", [name for name in dir(hookspecs) if name.startswith("tlbench_")])
def test_hookspec_annotations_resolve_to_public_names(hook):
    """The names the hookspecs import only for type checkers are all exported by tlbench."""
    function = getattr(hookspecs, hook)
    hints = typing.get_type_hints(function, globalns={**vars(hookspecs), **PUBLIC})
    assert "return" in hints and set(inspect.signature(function).parameters) <= set(hints)


@pytest.mark.parametrize("cls", [records.BackbonePlugin, records.DatasetPlugin, records.StrategyPlugin,
                                 records.ScorerPlugin, records.ExecutorPlugin, records.Outcome,
                                 records.LoadedDataset, records.Split, context.CellContext, context.Features,
                                 backbone.Backbone, image.ImageBackbone])
def test_record_and_context_annotations_resolve_to_public_names(cls):
    module = sys.modules[cls.__module__]
    assert cls.__name__ in tlbench.__all__
    own = cls.__dict__.get("__annotations__", {})  # not nn.Module's: those are torch's business
    assert own, f"{cls.__name__} declares no annotations"
    for name, annotation in own.items():
        if isinstance(annotation, str):  # torch and numpy: type-checking-only imports where plugins import the module
            eval(annotation, {"torch": torch, "np": np, **vars(module), **PUBLIC})  # NameError: a name not exported


def test_import_is_clean_in_a_fresh_interpreter():
    """No import cycle (any submodule import runs tlbench/__init__ first) and the kit imports too."""
    code = "import tlbench.testing, tlbench; assert tlbench.CellContext and tlbench.Features and tlbench.Cell"
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_plugin_from_outside_adds_an_executor_and_a_modality_with_public_names(write_suite, cli):
    source = (ROOT / "tests/helpers/outside_plugin.py").read_text()
    used = set(re.findall(r"\btlbench\.([A-Za-z_]\w*)\b(?!\.\w)", source))
    used = {name for name in used if importlib.util.find_spec(f"tlbench.{name}") is None}  # not submodules
    assert {"Session", "ExecutorPlugin", "Options"} <= used and sorted(used - set(tlbench.__all__)) == []
    imported = re.findall(r"^from tlbench\.([\w.]+) import", source, flags=re.M)
    assert set(imported) <= {"modalities.modality", "run.worker", "plugins.executors",
                             "train.strategies"}  # documented public modules
    from tlbench.modalities import modality
    one_cell = tiny_suite([{"plugin": "linear_probe", "C": 1.0}], suite={"name": "outside"})
    result = cli("run", write_suite(one_cell), "--plugin", "helpers.outside_plugin", "--executor", "serial",
                 "--no-report")
    assert result.exit_code == 0, result.output
    assert "1 to run" in result.stdout and "ok" in result.stdout
    assert modality.get("tabular").example(3, 5).shape == (3, 5)
