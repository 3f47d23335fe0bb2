"""The declared modalities: image and text (and a plugin's own), their backbone layers and what
their dataset plugins share.

Modules: digits, image, modality, text. This layer imports ``tlbench.contract`` and itself, never a layer
above it: the contracts in pyproject.toml, checked by tests/test_layers.py.
"""
