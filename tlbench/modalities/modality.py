"""Declared modalities: what a backbone takes and a dataset is (``modality = "image"``).

A :class:`Modality` names a kind of raw input, gives an example of it, as a dataset of that
modality yields it (the conformance kit feeds it to backbones), and the rule for joining a source
and a target batch in one forward pass through a backbone (DANN's step). ``image`` and ``text`` are
built in; a plugin adds another (audio, tabular) with :func:`register`. A backbone or dataset
that declares a modality nobody registered is a one-line error naming the plugin, and
:func:`mismatch` is the one compatibility check of ``run`` (cells skipped with the reason) and
``rank`` (pairs left unscored with it).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tlbench.contract.errors import UserError

__all__ = ["Modality", "get", "mismatch", "register"]


@dataclass(frozen=True)
class Modality:
    """``example(n, size)``: ``n`` raw inputs as a dataset of this modality gives them (``size``:
    an image's side, where it means something). ``join(backbone, source, target)``: the features
    ``(len(source) + len(target), feature_dim)`` of two batches as the backbone's encoder gives
    them (on its device), source rows first, in one forward pass, so that batch normalisation
    sees both (DANN's joint step); a backbone's ``modality`` attribute names its rule."""

    name: str
    help: str
    example: Callable[[int, int], Any]
    join: Callable[[Any, Any, Any], Any]


_MODALITIES: dict[str, Modality] = {}


def register(modality: Modality) -> Modality:
    """Declare ``modality`` (a second one of the same name replaces the first)."""
    _MODALITIES[modality.name] = modality
    return modality


def get(name: str, plugin: str = "") -> Modality:
    """The modality ``name``; a UserError naming ``plugin`` when none is registered under it."""
    try:
        return _MODALITIES[name]
    except KeyError:
        raise UserError(f"{plugin + ': ' if plugin else ''}unknown modality {name!r}; registered: "
                        f"{', '.join(sorted(_MODALITIES))} (a plugin adds one: tlbench.modalities.modality.register)") from None


def mismatch(backbone, dataset, backbone_label: str, dataset_label: str) -> str | None:
    """Why a backbone record cannot read a dataset record (their modalities differ), or None; an
    undeclared modality of either is a UserError naming its plugin."""
    takes, holds = getattr(backbone, "modality", "image"), getattr(dataset, "modality", "image")
    get(takes, f"backbone plugin {backbone.name!r}")
    get(holds, f"dataset plugin {dataset.name!r}")
    if takes != holds:
        return f"backbone {backbone_label!r} takes {takes} and dataset {dataset_label!r} is {holds}"
    return None


def _images(n: int, size: int):
    import torch
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def _join_images(backbone, source, target):
    """Images, whose raw sizes may differ between domains, are prepared apart and then joined."""
    import torch
    return backbone(torch.cat([backbone.prepare(source), backbone.prepare(target)]))


def _texts(n: int, size: int) -> list[str]:
    return ["a short sentence", "another, slightly longer example sentence"][:n] * (n // 2 or 1)


def _join_texts(backbone, source, target):
    """Encoded text (a dict of equally padded tensors) is joined key by key before ``prepare``
    trims the padding."""
    import torch
    return backbone.extract({k: torch.cat([source[k], target[k]]) for k in source})


register(Modality("image", "uint8 N×C×H×W tensors (C = 1 or 3)", _images, _join_images))
register(Modality("text", "a list[str]", _texts, _join_texts))
