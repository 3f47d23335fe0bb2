"""Deprecated: moved to :mod:`tlbench.contract.evidence`; this path is removed in 0.5.0."""
from tlbench._moved import alias

alias(__name__)
