"""The contract: the values, records and types a plugin and every layer above build on.

Modules: assets, backbone, cells, errors, evidence, options, results, sampling, session, space, step,
values, weights. This layer imports nothing of tlbench outside itself: the contracts in pyproject.toml,
checked by tests/test_layers.py.
"""
