"""Declared modalities: what a backbone takes and a dataset is (``modality = "image"``).

A :class:`Modality` names a kind of raw input and gives an example of it, as a dataset of that
modality yields it (the conformance kit feeds it to backbones). ``image`` and ``text`` are
built in; a plugin adds another (audio, tabular) with :func:`register`. A backbone or dataset
that declares a modality nobody registered is a one-line error naming the plugin, and
:func:`mismatch` is the one compatibility check of ``run`` (cells skipped with the reason) and
``rank`` (pairs left unscored with it).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tlbench.errors import UserError

__all__ = ["Modality", "get", "mismatch", "register"]


@dataclass(frozen=True)
class Modality:
    """``example(n, size)``: ``n`` raw inputs as a dataset of this modality gives them (``size``:
    an image's side, where it means something)."""

    name: str
    help: str
    example: Callable[[int, int], Any]


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
                        f"{', '.join(sorted(_MODALITIES))} (a plugin adds one: tlbench.modality.register)") from None


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


def _texts(n: int, size: int) -> list[str]:
    return ["a short sentence", "another, slightly longer example sentence"][:n] * (n // 2 or 1)


register(Modality("image", "uint8 N×C×H×W tensors (C = 1 or 3)", _images))
register(Modality("text", "a list[str]", _texts))
