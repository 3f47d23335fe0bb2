"""Deprecated: moved to :mod:`tlbench.contract.weights`; this path is removed in 0.5.0."""
from tlbench._moved import alias

alias(__name__)
