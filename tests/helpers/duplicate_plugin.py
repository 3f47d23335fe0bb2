"""Registers a dataset name that a built-in already uses."""
import tlbench
from tlbench.builtins.datasets.digits import DigitsOptions, load


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin("digits", "a second digits", DigitsOptions, load)]
