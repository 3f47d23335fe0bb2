"""A tiny cell that trains a few exact steps: the retention strategies' tests."""
from tlbench.testing import tiny_context
from tlbench.train.context import CellContext
from tlbench.train.strategies import seed_everything


def stepped_context(steps: int = 6, **context) -> CellContext:
    """:func:`tlbench.testing.tiny_context` (batches of 32) training exactly ``steps`` optimizer
    steps, with the global generators seeded as the worker seeds them before a cell."""
    ctx = tiny_context(batch_size=32, **context)
    ctx.train = ctx.train.model_copy(update={"steps": steps})
    seed_everything(ctx.seed)
    return ctx
