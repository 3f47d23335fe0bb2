"""Semantic segmentation (:mod:`.task`)."""
