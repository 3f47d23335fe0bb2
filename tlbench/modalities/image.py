"""The image layer of the backbone contract: uint8 images in, normalised float batches out."""
from __future__ import annotations

import torch
from torch import nn

from tlbench.contract.backbone import Backbone


class ImageBackbone(Backbone):
    """A backbone for images. Subclasses set ``input_size``, ``mean`` and ``std`` (what the
    pretrained weights expect) and get :meth:`prepare`: datasets keep images as uint8 ``N×C×H×W``
    at any size, so one dataset serves backbones of any input size."""

    input_size: int = 32
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)

    def prepare(self, inputs: torch.Tensor) -> torch.Tensor:
        """uint8 ``N×C×H×W`` images on the model's device -> normalised float at ``input_size``."""
        x = inputs.float().div_(255)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = nn.functional.interpolate(x, size=(self.input_size, self.input_size),
                                          mode="bilinear", align_corners=False, antialias=True)
        mean, std = self._normalisation(x.device)
        x = (x - mean) / std
        return x.contiguous(memory_format=torch.channels_last)  # as engine.place lays out the weights

    def _normalisation(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """mean and std as ``1×C×1×1`` tensors on ``device``, made once (no copy per batch)."""
        cache = self.__dict__.setdefault("_norm_cache", {})
        if device not in cache:
            cache[device] = tuple(torch.tensor(v, device=device).view(1, -1, 1, 1) for v in (self.mean, self.std))
        return cache[device]
