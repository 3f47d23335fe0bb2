"""Running: the controller, the search planner, the store, the worker, estimates and ranks.

Modules: estimate, eta, rank, runner, search, store, worker. This layer imports
``tlbench.contract``, ``tlbench.modalities``, ``tlbench.train``, ``tlbench.plugins``,
``tlbench.plan``, ``tlbench.analysis`` and itself, never a layer above it: the contracts in
pyproject.toml, checked by tests/test_layers.py.
"""
