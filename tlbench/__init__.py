"""tlbench: which pretrained backbone and which transfer strategy, measured.

Everything a plugin author annotates is importable from here.
"""
import pluggy

from tlbench.backbone import Backbone, Classifier
from tlbench.cells import Cell, TrainOptions
from tlbench.context import CellContext, Features
from tlbench.errors import Diverged, UserError
from tlbench.evidence import SplitEvidence
from tlbench.image import ImageBackbone
from tlbench.records import (BackbonePlugin, DatasetPlugin, Encoder, ExecutorPlugin, LoadedDataset, Options,
                             Outcome, Role, ScorerPlugin, Split, StrategyPlugin)
from tlbench.results import CellRecord, Cost
from tlbench.step import ClassificationStep, StepOutput, TrainStep

__version__ = "0.3.0"
hookimpl = pluggy.HookimplMarker("tlbench")

__all__ = ["hookimpl", "Backbone", "BackbonePlugin", "Cell", "CellContext", "CellRecord", "ClassificationStep",
           "Classifier", "Cost", "SplitEvidence", "DatasetPlugin", "Diverged", "Encoder", "ExecutorPlugin", "Features", "ImageBackbone", "LoadedDataset",
           "Options", "Outcome", "Role", "ScorerPlugin", "Split", "StepOutput", "StrategyPlugin", "TrainOptions",
           "TrainStep", "UserError", "__version__"]
