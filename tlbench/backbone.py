"""The backbone contract: a feature extractor that knows how to prepare its own inputs."""
from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """Maps a prepared batch to pooled features of shape ``(B, feature_dim)``.

    Subclasses set ``feature_dim`` and implement :meth:`forward`; image backbones also set
    ``input_size``, ``mean`` and ``std`` and get :meth:`prepare` for free. ``blocks()`` lists the
    trainable stages from input to output (``partial_finetune`` unfreezes the last k);
    ``lora_targets`` names the modules that LoRA adapts by default.
    """

    feature_dim: int
    input_size: int = 32
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    lora_targets: list[str] | str = "all-linear"

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
        return x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x

    def _normalisation(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """mean and std as ``1×C×1×1`` tensors on ``device``, made once (no copy per batch)."""
        cache = self.__dict__.setdefault("_norm_cache", {})
        if device not in cache:
            cache[device] = tuple(torch.tensor(v, device=device).view(1, -1, 1, 1) for v in (self.mean, self.std))
        return cache[device]

    def extract(self, inputs) -> torch.Tensor:
        """Features of a raw batch: ``forward(prepare(inputs))``."""
        return self(self.prepare(inputs))

    def blocks(self) -> list[nn.Module]:
        return list(self.children())


class Classifier(nn.Module):
    """Backbone + linear head: raw batch in, logits out. What every trained strategy evaluates."""

    def __init__(self, backbone: Backbone, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.feature_dim, num_classes)

    def forward(self, inputs):
        return self.head(self.backbone.extract(inputs))
