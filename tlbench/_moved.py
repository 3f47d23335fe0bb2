"""The deprecation shims of the layout move: ``tlbench.<old>`` paths of 0.3 that plugin authors
imported now live in the layer folders. Each shim module imports the new module and puts it in
its place in ``sys.modules`` (the same module object: same classes, same functions), with one
DeprecationWarning naming the new path. tlbench itself never imports a shim (a contract in
pyproject.toml; tests/test_layers.py). The shims go in 0.5.0.
"""
from __future__ import annotations

import importlib
import sys
import warnings

REMOVED_IN = "0.5.0"

#: old path -> new path
MOVED = {
    'tlbench.assets': 'tlbench.contract.assets',
    'tlbench.backbone': 'tlbench.contract.backbone',
    'tlbench.cells': 'tlbench.contract.cells',
    'tlbench.compat': 'tlbench.train.compat',
    'tlbench.context': 'tlbench.train.context',
    'tlbench.errors': 'tlbench.contract.errors',
    'tlbench.evidence': 'tlbench.contract.evidence',
    'tlbench.executors': 'tlbench.plugins.executors',
    'tlbench.hookspecs': 'tlbench.plugins.hookspecs',
    'tlbench.host': 'tlbench.plugins.host',
    'tlbench.image': 'tlbench.modalities.image',
    'tlbench.modality': 'tlbench.modalities.modality',
    'tlbench.preflight': 'tlbench.plan.preflight',
    'tlbench.records': 'tlbench.plugins.records',
    'tlbench.results': 'tlbench.contract.results',
    'tlbench.scores': 'tlbench.analysis.scores',
    'tlbench.space': 'tlbench.contract.space',
    'tlbench.step': 'tlbench.contract.step',
    'tlbench.strategies': 'tlbench.train.strategies',
    'tlbench.text': 'tlbench.modalities.text',
    'tlbench.weights': 'tlbench.contract.weights',
    'tlbench.worker': 'tlbench.run.worker',
}


def alias(old: str) -> None:
    """Make ``old`` the module it moved to, warning once (at the importing line)."""
    new = MOVED[old]
    frame, level = sys._getframe(1), 2  # level 2: the shim's own line
    while frame is not None and (_bootstrap(frame) or frame.f_globals.get("__name__") in (old, "importlib")):
        level += not _bootstrap(frame)  # warnings skips importlib's bootstrap frames itself
        frame = frame.f_back
    warnings.warn(f"{old} is deprecated: import {new} (the layout move; {old} is removed in {REMOVED_IN})",
                  DeprecationWarning, stacklevel=level)
    sys.modules[old] = importlib.import_module(new)


def _bootstrap(frame) -> bool:
    return "importlib" in frame.f_code.co_filename and "_bootstrap" in frame.f_code.co_filename
