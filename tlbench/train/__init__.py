"""Training: the CellContext a strategy gets, the loops, data splits, features, deployment, energy,
and what strategies share.

Modules: augment, compat, context, data, deploy, energy, engine, features, norms, peft, strategies. This layer
imports ``tlbench.contract``, ``tlbench.modalities`` and itself, never a layer above it: the
contracts in pyproject.toml, checked by tests/test_layers.py.
"""
