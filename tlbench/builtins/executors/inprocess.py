"""The default executor: cells one after another in this process (one device)."""
import tlbench


def run(cells, run_cell, on_record):
    for cell in cells:
        on_record(cell, run_cell(cell))


@tlbench.hookimpl
def tlbench_executors():
    return [tlbench.ExecutorPlugin("inprocess", "run cells one after another in this process", run)]
