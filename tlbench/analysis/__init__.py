"""Analysis: statistics, selection, savings and transferability scores as pure functions.

Modules: calibration, savings, scores, selection, simulate, stats. This layer imports ``tlbench.contract``,
``tlbench.modalities``, ``tlbench.train``, ``tlbench.plugins``, ``tlbench.plan`` and itself, never a
layer above it: the contracts in pyproject.toml, checked by tests/test_layers.py.
"""
