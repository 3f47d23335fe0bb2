"""The backbone contract, one for every modality, the TaskModel (a Classifier for classification)
every trained strategy uses, and
:func:`linear_head`, a pretrained source-task classifier (``Backbone.set_source_head``) rebuilt
from its tensors.

A backbone is an ``nn.Module`` that maps a *prepared* batch to pooled features ``(B, feature_dim)``.
Raw inputs reach it in two stages: the backbone plugin's encoder (text: tokenisation) runs once per
dataset and is cached; ``prepare`` runs per batch on the device (images: resize and normalise; text:
trim the padding). Image specifics live in :mod:`tlbench.modalities.image`, text specifics in
:mod:`tlbench.modalities.text`; strategies see only this contract.
"""
from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """Maps ``prepare(batch)`` to features of shape ``(B, feature_dim)``.

    Subclasses set ``feature_dim`` and implement :meth:`forward`. ``blocks()`` lists the trainable
    stages from input to output (``partial_finetune`` unfreezes the last k); ``lora_targets`` names
    the modules that LoRA adapts by default; ``source_head``, when the pretrained model has one
    (:meth:`set_source_head`), maps features to the source task's logits (e.g. ImageNet's 1000
    classes; LEEP reads them). ``modality`` names the :mod:`tlbench.modalities.modality` it takes, the one its
    plugin record declares (``tlbench.modalities.text.TextBackbone``: ``"text"``); DANN joins a source and a
    target batch by that modality's rule.
    """

    feature_dim: int
    modality: str = "image"
    lora_targets: list[str] | str = "all-linear"
    source_head: nn.Module | None = None

    def set_source_head(self, head: nn.Module | None) -> None:
        """Keep the pretrained source-task classifier beside the network, frozen: not a registered
        submodule, so it stays out of ``parameters()``, ``state_dict()``, every cell's parameter
        counts and every optimizer, and still moves with the backbone (``.to(device)``)."""
        if head is not None:
            head.requires_grad_(False).eval()
        self.__dict__["source_head"] = head

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        head = self.__dict__.get("source_head")
        if head is not None:
            head._apply(fn, recurse)
        return self

    def prepare(self, batch):
        """An encoded batch on the model's device -> what :meth:`forward` takes (default: as is)."""
        return batch

    def extract(self, batch):
        """Features of an encoded batch: ``forward(prepare(batch))``."""
        return self(self.prepare(batch))

    def blocks(self) -> list[nn.Module]:
        return list(self.children())

    def pyramid(self, x) -> list[torch.Tensor]:
        """Multi-scale feature maps of a prepared batch ``x`` (:meth:`prepare`'s output), from the input
        side to the output side, each ``B×C_i×H_i×W_i`` with ``C_i = pyramid_channels()[i]`` and a
        stride that grows from map to map: what detection and segmentation heads read (as timm's
        ``features_only``). Computed by the same modules as :meth:`forward`, so that freezing, LoRA
        and the other strategies act on it alike. A backbone without one (text) raises
        :class:`tlbench.contract.errors.NotApplicable`."""
        from tlbench.contract.errors import NotApplicable
        raise NotApplicable(f"backbone {type(self).__name__} gives no feature pyramid (Backbone.pyramid): "
                            "it serves classification only")

    def pyramid_channels(self) -> list[int]:
        """The channel count of each map :meth:`pyramid` returns, in its order."""
        from tlbench.contract.errors import NotApplicable
        raise NotApplicable(f"backbone {type(self).__name__} gives no feature pyramid (Backbone.pyramid)")


class TaskModel(nn.Module):
    """A backbone and the new ``head`` a task puts on it (:mod:`tlbench.tasks`): what
    ``ctx.classifier()`` builds and every trained strategy evaluates. ``backbone`` is the
    :class:`Backbone`; ``head`` holds every new module, so that freezing, LoRA and layer-wise rates
    act on a detector or a segmenter as on a classifier."""

    backbone: Backbone
    head: nn.Module


class Classifier(TaskModel):
    """Backbone + linear head: encoded batch in, logits out (the classification task's model)."""

    def __init__(self, backbone: Backbone, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.feature_dim, num_classes)

    def forward(self, inputs):
        return self.head(self.backbone.extract(inputs))


def linear_head(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """An ``nn.Linear`` holding copies of ``weight``/``bias``; made without random init, so
    building it draws nothing from torch's global generator (seeded runs stay bit-identical)."""
    out_features, in_features = weight.shape
    head = nn.utils.skip_init(nn.Linear, in_features, out_features, bias=bias is not None,
                              dtype=weight.dtype)
    with torch.no_grad():
        head.weight.copy_(weight)
        if bias is not None:
            head.bias.copy_(bias)
    return head
