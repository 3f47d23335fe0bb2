"""The pretrained source-task classifier of a backbone, held beside the module tree.

``Backbone.source_head`` maps features to the source task's logits (ImageNet: 1000 classes) so
that transferability scores such as LEEP can read them. It is not part of the network that a
strategy trains or deploys: registered as a submodule it would add its weights (1.28M for a
1280 -> 1000 head) to ``parameters()``, to the parameter counts of every cell and to the
optimizer. :class:`SourceHeadMixin` keeps it out of ``parameters()`` and ``state_dict()``, frozen,
and still moves it with the backbone (``.to(device)``, ``.half()``, ...).
"""
from __future__ import annotations

import torch
from torch import nn


class SourceHeadMixin:
    """Mix into a :class:`tlbench.Backbone` subclass (before it) and call
    :meth:`set_source_head`."""

    def set_source_head(self, head: nn.Module | None) -> None:
        if head is not None:
            head.requires_grad_(False).eval()
        self.__dict__["source_head"] = head  # a plain attribute: not a registered submodule

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        head = self.__dict__.get("source_head")
        if head is not None:
            head._apply(fn, recurse)
        return self


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
