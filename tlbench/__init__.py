"""tlbench: which pretrained backbone and which transfer strategy, measured.

Everything a plugin author annotates is importable from here. The names are imported on first
use (PEP 562), so that ``import tlbench`` (and ``tlbench --help``) does not import torch.
"""
import importlib

import pluggy

__version__ = "0.3.0"
hookimpl = pluggy.HookimplMarker("tlbench")

#: public name -> the module that defines it
_LAZY = {
    "Backbone": "tlbench.backbone", "Classifier": "tlbench.backbone",
    "Cell": "tlbench.cells", "TrainOptions": "tlbench.cells",
    "CellContext": "tlbench.context", "Features": "tlbench.context",
    "Diverged": "tlbench.errors", "UserError": "tlbench.errors",
    "SplitEvidence": "tlbench.evidence",
    "Session": "tlbench.session",
    "ImageBackbone": "tlbench.image",
    "Modality": "tlbench.modality",
    **{name: "tlbench.records" for name in ("BackbonePlugin", "DatasetPlugin", "Encoder", "ExecutorPlugin",
                                            "ScorerPlugin", "StrategyPlugin")},
    **{name: "tlbench.values" for name in ("LoadedDataset", "Options", "Outcome", "Role", "Split")},
    "CellRecord": "tlbench.results", "Cost": "tlbench.results",
    "ClassificationStep": "tlbench.step", "StepOutput": "tlbench.step", "TrainStep": "tlbench.step",
}

__all__ = ["hookimpl", "__version__", *sorted(_LAZY)]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'tlbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # imported once
    return value


def __dir__():
    return __all__
