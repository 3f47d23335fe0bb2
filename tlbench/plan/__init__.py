"""Planning: the suite (TOML -> validated cells) and the preflight.

Modules: preflight, suite. This layer imports ``tlbench.contract``, ``tlbench.modalities``,
``tlbench.train``, ``tlbench.plugins`` and itself, never a layer above it: the contracts in
pyproject.toml, checked by tests/test_layers.py.
"""
