"""tlbench: which pretrained backbone and which transfer strategy, measured.

Everything a plugin author annotates is importable from here, and the Python API (``run_suite``,
``load_results``, ``summarize``: :mod:`tlbench.api`). The names are imported on first use (PEP 562),
so that ``import tlbench`` (and ``tlbench --help``) does not import torch.
"""
import importlib

import pluggy

__version__ = "0.3.0"
hookimpl = pluggy.HookimplMarker("tlbench")

#: public name -> the module that defines it
_LAZY = {
    "Backbone": "tlbench.contract.backbone", "Classifier": "tlbench.contract.backbone",
    "TaskModel": "tlbench.contract.backbone",
    "Cell": "tlbench.contract.cells", "TrainOptions": "tlbench.contract.cells",
    "CellContext": "tlbench.train.context", "Features": "tlbench.train.context",
    "Diverged": "tlbench.contract.errors", "UserError": "tlbench.contract.errors",
    "SplitEvidence": "tlbench.contract.evidence", "ExampleScores": "tlbench.contract.evidence",
    "Session": "tlbench.contract.session",
    "ImageBackbone": "tlbench.modalities.image",
    "Modality": "tlbench.modalities.modality",
    "Task": "tlbench.tasks.task", "Evaluation": "tlbench.tasks.task",
    **{name: "tlbench.plugins.records" for name in ("ANY_TASK", "BackbonePlugin", "DatasetPlugin", "Encoder", "ExecutorPlugin",
                                            "ScorerPlugin", "StrategyPlugin")},
    **{name: "tlbench.contract.values" for name in ("LoadedDataset", "Options", "Outcome", "Role", "Split")},
    "CellRecord": "tlbench.contract.results", "Cost": "tlbench.contract.results",
    "ClassificationStep": "tlbench.contract.step", "StepOutput": "tlbench.contract.step", "TrainStep": "tlbench.contract.step",
    **{name: "tlbench.api" for name in ("load_results", "run_suite", "summarize")},
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
