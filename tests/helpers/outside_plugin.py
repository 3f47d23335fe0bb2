"""A third party's executor and modality, written with tlbench's public names only."""
import torch

import tlbench
from tlbench.modalities.modality import Modality, register
from tlbench.run.worker import run_cell

register(Modality("tabular", "a float32 N×F tensor of features", lambda n, size: torch.zeros(n, size),
                  lambda backbone, source, target: backbone.extract(torch.cat([source, target]))))


class SerialOptions(tlbench.Options):
    device: str = "cpu"


def run(session: tlbench.Session, options: SerialOptions) -> None:
    while (spec := session.next()) is not None:
        session.done(spec, run_cell(spec, options.device))


@tlbench.hookimpl
def tlbench_executors():
    return [tlbench.ExecutorPlugin("serial", "a third party's executor: one cell after another", SerialOptions, run)]
