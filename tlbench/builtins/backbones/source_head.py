"""A pretrained source-task classifier (``Backbone.set_source_head``) rebuilt from its tensors."""
from __future__ import annotations

import torch
from torch import nn


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
