"""Training: the CellContext a strategy gets, the loops, data splits, features, deployment, energy.

Modules: augment, compat, context, data, deploy, energy, engine, features, strategies. This layer
imports ``tlbench.contract``, ``tlbench.modalities`` and itself, never a layer above it: the
contracts in pyproject.toml, checked by tests/test_layers.py.
"""
