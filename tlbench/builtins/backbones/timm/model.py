"""The timm backbone's module (torch, timm): imported by :func:`tlbench.builtins.backbones.timm.build`."""
from __future__ import annotations

import torch
from timm.models import group_parameters
from torch import nn

from tlbench.contract.errors import NotApplicable
from tlbench.modalities.image import ImageBackbone, last_at_each_stride
from tlbench.train.peft import classifier_names, default_lora_targets

_MATCH_PREV_GROUP = (99999,)  # timm's marker: "merge into the previous group"


class TimmBackbone(ImageBackbone):
    """``timm.create_model(name, num_classes=0)``: forward gives pooled features ``(B, feature_dim)``;
    ``source_head``: the pretrained classifier on those features (None without one). :meth:`pyramid`:
    timm's ``forward_intermediates`` at the model's ``feature_info`` levels, the last at each stride
    from 4 up (EfficientNet: strides 4, 8, 16, 32); a model without them raises NotApplicable."""

    def __init__(self, model: nn.Module, input_size: int, mean, std, source_head: nn.Module | None = None):
        super().__init__()
        self.model = model
        self.feature_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
        self.input_size = int(input_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.lora_targets = default_lora_targets(model, prefix="model.")
        self.set_source_head(source_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, indices=self._pyramid_levels(), intermediates_only=True,
                                                stop_early=True)

    def pyramid_channels(self) -> list[int]:
        levels = self._pyramid_levels()
        return [int(self.model.feature_info[i]["num_chs"]) for i in levels]

    def _pyramid_levels(self) -> list[int]:
        """Indices into ``feature_info``: the last level at each reduction >= 4."""
        info = getattr(self.model, "feature_info", None)
        if not info or not hasattr(self.model, "forward_intermediates"):
            raise NotApplicable(f"timm model {type(self.model).__name__} gives no feature pyramid "
                                "(no feature_info / forward_intermediates): it serves classification only")
        return last_at_each_stride([int(level["reduction"]) for level in info])

    def blocks(self) -> list[nn.Module]:
        return model_blocks(self.model)


# ---------------------------------------------------------------------------------------------
# blocks, found generically


def model_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's stages from input to output, as timm groups them for layer-wise LR decay.

    Uses ``model.group_matcher(coarse=True)`` (stem, then stages/blocks; the final norm or head
    conv merged into the last block); parameters the matcher leaves out (a pooling head's norm)
    join the last block; the classifier is excluded. Models without a group matcher fall back to
    their top-level children that hold parameters.
    """
    try:
        matcher = model.group_matcher(coarse=True)
    except (AttributeError, NotImplementedError):
        matcher = None
    classifier = classifier_names(model)
    params = {n: p for n, p in model.named_parameters()
              if not any(n == c or n.startswith(c + ".") for c in classifier)}
    if matcher is not None:
        if isinstance(matcher, dict):
            matcher = {**matcher, "_rest": [(r".*", _MATCH_PREV_GROUP)]}
        groups = group_parameters(model, matcher)
        groups = [[n for n in names if n in params] for _, names in sorted(groups.items())]
        groups = [g for g in groups if g]
        if len(groups) >= 2:
            return [_as_module(model, names) for names in groups]
    return [m for n, m in model.named_children()
            if n not in classifier and any(True for _ in m.parameters())]


class ParamGroup(nn.Module):
    """Several modules (and loose parameters such as ViT's ``cls_token``) of one model, held as one
    block: its ``parameters()`` are exactly the group's. Not registered in the model itself."""

    def __init__(self, names: list[str], modules: list[nn.Module], params: list[nn.Parameter]):
        super().__init__()
        self.names = names
        self.parts = nn.ModuleList(modules)
        self.loose = nn.ParameterList(params)

    def extra_repr(self) -> str:
        return ", ".join(self.names)


def _as_module(model: nn.Module, param_names: list[str]) -> nn.Module:
    """The smallest set of submodules whose parameters are exactly ``param_names``."""
    wanted = set(param_names)
    chosen, covered = [], set()
    for name, module in model.named_modules():
        if not name or any(name.startswith(c + ".") for c in chosen):
            continue
        own = {f"{name}.{n}" for n, _ in module.named_parameters()}
        if own and own <= wanted:
            chosen.append(name)
            covered |= own
    loose = [n for n in param_names if n not in covered]
    if len(chosen) == 1 and not loose:
        return model.get_submodule(chosen[0])
    parameters = dict(model.named_parameters())
    return ParamGroup(chosen + loose, [model.get_submodule(n) for n in chosen],
                      [parameters[n] for n in loose])
