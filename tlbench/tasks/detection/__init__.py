"""Object detection: :class:`~tlbench.tasks.detection.model.Detector` (torch, torchvision)."""
