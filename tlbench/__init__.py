"""tlbench: which pretrained backbone and which transfer strategy, measured."""
import pluggy

from tlbench.records import (BackbonePlugin, DatasetPlugin, ExecutorPlugin, LoadedDataset,
                             Options, Outcome, Split, StrategyPlugin)

__version__ = "0.1.0"
hookimpl = pluggy.HookimplMarker("tlbench")

__all__ = ["hookimpl", "BackbonePlugin", "DatasetPlugin", "ExecutorPlugin", "LoadedDataset",
           "Options", "Outcome", "Split", "StrategyPlugin", "__version__"]
