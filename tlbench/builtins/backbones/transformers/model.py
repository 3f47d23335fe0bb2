"""The transformers backbone's module (torch): imported by :func:`tlbench.builtins.backbones.transformers.build`."""
from __future__ import annotations

import torch
from torch import nn

from tlbench.modalities.text import TextBackbone, attention_linears, pool


class TransformersBackbone(TextBackbone):
    """``AutoModel`` without its pooler: last hidden states pooled to ``(B, hidden_size)``."""

    def __init__(self, model: nn.Module, pooling: str):
        super().__init__()
        if getattr(model, "pooler", None) is not None:
            model.pooler = None  # BERT's pooler (dense + tanh, for NSP) is unused: features are pooled here
        self.model = model
        self.pooling = pooling
        self.feature_dim = int(model.config.hidden_size)
        self.lora_targets = attention_linears(model, prefix="model.") or "all-linear"

    def forward(self, prepared: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.model(**prepared)
        return pool(out.last_hidden_state, prepared["attention_mask"], self.pooling)

    def blocks(self) -> list[nn.Module]:
        """The embeddings, then each transformer layer. Parameters outside the layers are grouped
        by where they sit: before the first layer (embeddings) as the first block, after it (a
        final norm) joined to the last layer. Pooling has no parameters."""
        layers = _layer_list(self.model)
        if layers is None:
            return [m for m in self.model.children() if any(True for _ in m.parameters())]
        inside = {id(p) for p in layers.parameters()}
        before, after, seen_layers = [], [], False
        for module in self.model.modules():
            if module is layers:
                seen_layers = True
            elif any(id(p) not in inside for p in module.parameters(recurse=False)):
                (after if seen_layers else before).append(module)
        embeddings = getattr(self.model, "embeddings", None)
        if embeddings is not None and all(any(m is e for e in embeddings.modules()) for m in before):
            first = [embeddings]
        else:
            first = [nn.ModuleList(before)] if before else []
        blocks = first + list(layers)
        if after:
            blocks[-1] = nn.ModuleList([blocks[-1], *after])
        return blocks


def _layer_list(model: nn.Module) -> nn.ModuleList | None:
    """The encoder's list of transformer layers: the ModuleList of ``num_hidden_layers`` modules."""
    n = getattr(model.config, "num_hidden_layers", None)
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    exact = [m for m in lists if len(m) == n]
    return (exact or sorted(lists, key=len, reverse=True) or [None])[0]


# ---------------------------------------------------------------------------------------------
# where the files come from
