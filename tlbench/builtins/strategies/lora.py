"""LoRA (Hu et al. 2021) through peft: the ``peft`` strategy's preset with ``method = "lora"``.

Low-rank adapters on the backbone's chosen layers and a new full head train; every pretrained
weight stays frozen. The adapted layers default to the backbone's ``lora_targets`` (timm: a ViT's
attention projections, a convnet's pointwise 1x1 convolutions; the tiny CNN: its last two
convolutions). After training the adapters are merged into the weights (``merge_and_unload``)
and the merged model is what is evaluated. Options, training, merging and parameter counts are
:mod:`tlbench.train.peft`'s (as the ``peft`` strategy's); this module only names the preset.
"""
from __future__ import annotations

import tlbench
from tlbench.train.peft import GRID, SPACE, build_model, fit, method_options, run

__all__ = ["GRID", "LoraOptions", "build_model", "fit", "run"]

#: r (rank, default 8), alpha (16), dropout (0) and the options of every peft method
LoraOptions = method_options("lora")


@tlbench.hookimpl
def tlbench_strategies():
    return [tlbench.StrategyPlugin("lora", "low-rank adapters (peft) on the backbone's attention projections or "
                                   "1x1 convolutions and a new head; merged for evaluation (the peft strategy "
                                   "with method = \"lora\")", LoraOptions, run, grid=GRID, space=SPACE, tasks=tlbench.ANY_TASK)]
