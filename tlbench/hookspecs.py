"""The plugin contract. Every hook is called with keyword arguments and prefixed ``tlbench_``.

A plugin is a module (or object) with functions marked ``@tlbench.hookimpl`` whose names are
those below. Plugins are found through the ``tlbench`` entry-point group (built-ins use the same
group in tlbench's own ``pyproject.toml``) or named with ``--plugin module``.

Example, a complete dataset plugin::

    import torch, tlbench

    class Options(tlbench.Options):
        n: int = 100

    def load(options):
        x = torch.randint(0, 255, (options.n, 3, 8, 8), dtype=torch.uint8)
        y = torch.arange(options.n) % 2
        return tlbench.LoadedDataset(["even", "odd"], {"all": tlbench.Split(x, y)})

    @tlbench.hookimpl
    def tlbench_datasets():
        return [tlbench.DatasetPlugin("noise", "random images", Options, load)]
"""
import pluggy

hookspec = pluggy.HookspecMarker("tlbench")


@hookspec
def tlbench_backbones():
    """Return a list of :class:`tlbench.BackbonePlugin`.

    ``build(options, pretrained)`` returns a :class:`tlbench.backbone.Backbone`: an ``nn.Module``
    whose ``forward`` maps ``prepare(raw_batch)`` to features ``(B, feature_dim)``. It must load
    weights with ``weights_only=True`` or safetensors, and give the same architecture randomly
    initialised when ``pretrained`` is false.
    """


@hookspec
def tlbench_datasets():
    """Return a list of :class:`tlbench.DatasetPlugin`.

    ``load(options)`` returns a :class:`tlbench.LoadedDataset`. It must be deterministic: the
    core derives the train/val/test split and label-fraction subsets from it with fixed seeds.
    A missing local file is a :class:`tlbench.errors.UserError` naming the path.
    """


@hookspec
def tlbench_strategies():
    """Return a list of :class:`tlbench.StrategyPlugin`.

    ``run(ctx, options)`` trains using only ``ctx.data["train"]`` labels (plus unlabelled
    ``ctx.data["target_train"]`` inputs if ``needs_target_domain``), selects nothing on test,
    and returns a :class:`tlbench.Outcome` with logits for every split in ``ctx.eval_splits``.
    Raising :class:`tlbench.errors.Diverged` records the cell as ``diverged``.
    """


@hookspec
def tlbench_executors():
    """Return a list of :class:`tlbench.ExecutorPlugin`: ways to run a list of cells
    (in-process now; worker pools or clusters as plugins)."""


@hookspec
def tlbench_cell_started(cell):
    """Called before a cell runs, with its :class:`tlbench.suite.Cell`. For trackers and loggers."""


@hookspec
def tlbench_cell_finished(cell, record):
    """Called after a cell's record (a dict, see README "Results") is stored."""
