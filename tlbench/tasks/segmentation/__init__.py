"""Semantic segmentation: :class:`~tlbench.tasks.segmentation.model.Segmenter` (torch, torchvision)."""
