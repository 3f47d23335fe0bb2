"""peft's family of parameter-efficient tuners as one strategy, ``peft``: ``method = "lora" |
"dora" | "ia3" | "loha" | "lokr" | "oft" | "boft" | "vera" | "hra" | "fourierft"``.

The methods, their options, training, merging and parameter counts are
:mod:`tlbench.train.peft`'s (shared with the ``lora`` preset); this module names the strategy.
"""
from __future__ import annotations

import tlbench
from tlbench.train.peft import GRID, METHODS, SPACE, PeftOptions, run


@tlbench.hookimpl
def tlbench_strategies():
    methods = "; ".join(f"{m.name}: {m.help}" for m in METHODS.values())
    return [tlbench.StrategyPlugin(
        "peft", f"any peft tuner by name (method) on the backbone's adapter targets and a new head; merged for "
                f"evaluation where the method can be; skipped where it cannot wrap the layers. {methods}",
        PeftOptions, run, grid=GRID, space=SPACE, tasks=tlbench.ANY_TASK)]
