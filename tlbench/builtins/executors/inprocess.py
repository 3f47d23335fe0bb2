"""The default executor: cells one after another in this process, on one device."""
from pydantic import Field

import tlbench


class InprocessOptions(tlbench.Options):
    device: str = Field("auto", description='"auto" (CUDA if present, else CPU), "cpu", "cuda", "cuda:1", ...')


def run(session, options: InprocessOptions) -> None:
    from tlbench.run.worker import run_cell

    group = None
    while (spec := session.next(prefer=group)) is not None:
        session.done(spec, run_cell(spec, options.device))
        group = spec.group


@tlbench.hookimpl
def tlbench_executors():
    return [tlbench.ExecutorPlugin("inprocess", "run cells one after another in this process", InprocessOptions,
                                   run)]
