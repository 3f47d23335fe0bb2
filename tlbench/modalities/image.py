"""The image layer of the backbone contract: uint8 images in, normalised float batches out; and
what image dataset plugins share to make those uint8 images.

Every image dataset turns its pictures into the same thing: an RGB ``uint8`` tensor
``N×3×S×S``, each image resized so its shorter side is ``S`` and then center-cropped to a
square (the usual ``Resize(S)`` + ``CenterCrop(S)``): :func:`load_image`, :func:`square_rgb` and
:func:`stack_images` decode files and PIL images alike; :func:`upsample` and :func:`to_uint8_rgb`
turn float arrays (the digit sets) into the same. Doing it in one place means that every image
dataset is decoded exactly alike.

A plugin imports this module inside the functions that load data (it imports torch); the path
types of its options are in :mod:`tlbench.contract.options`.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.datasets.folder import IMG_EXTENSIONS

from tlbench.contract.backbone import Backbone

__all__ = ["IMG_EXTENSIONS", "ImageBackbone", "is_image_file", "last_at_each_stride", "load_image", "square",
           "square_geometry", "square_rgb", "stack_images", "to_uint8_rgb", "upsample"]


class ImageBackbone(Backbone):
    """A backbone for images. Subclasses set ``input_size``, ``mean`` and ``std`` (what the
    pretrained weights expect) and get :meth:`prepare`: datasets keep images as uint8 ``N×C×H×W``
    at any size, so one dataset serves backbones of any input size."""

    input_size: int = 32
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)

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
        return x.contiguous(memory_format=torch.channels_last)  # as engine.place lays out the weights

    def _normalisation(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """mean and std as ``1×C×1×1`` tensors on ``device``, made once (no copy per batch)."""
        cache = self.__dict__.setdefault("_norm_cache", {})
        if device not in cache:
            cache[device] = tuple(torch.tensor(v, device=device).view(1, -1, 1, 1) for v in (self.mean, self.std))
        return cache[device]


def last_at_each_stride(strides: list[int], smallest: int = 4) -> list[int]:
    """The stages an image backbone's ``pyramid`` returns: given each stage's stride (input pixels
    per output cell, input to output, never decreasing), the index of the last stage at each stride
    of ``smallest`` or more."""
    return [i for i, s in enumerate(strides) if s >= smallest and (i + 1 == len(strides) or strides[i + 1] > s)]


_CHUNK = 256


def is_image_file(name: str) -> bool:
    """True for a file name with an image extension (case-insensitive) that is not hidden
    (skips macOS ``._x.jpg`` resource forks and the like)."""
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def square_rgb(image: Image.Image, size: int) -> torch.Tensor:
    """``image`` as an RGB ``uint8`` tensor ``3×size×size``: shorter side resized to ``size``
    (bilinear, antialiased), then center-cropped."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    image = square(image, size, Image.BILINEAR)
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


def square_geometry(width: int, height: int, size: int) -> tuple[tuple[int, int], int, int]:
    """How :func:`square_rgb` squares a ``width×height`` image: the resized ``(width, height)``
    (shorter side ``size``), then the crop's ``left`` and ``top`` in the resized image."""
    if width <= height:
        new = (size, max(size, int(size * height / width)))
    else:
        new = (max(size, int(size * width / height)), size)
    return new, int(round((new[0] - size) / 2.0)), int(round((new[1] - size) / 2.0))


def square(image: Image.Image, size: int, resample: int) -> Image.Image:
    """``image`` squared as :func:`square_geometry` says, resized with ``resample`` (masks: nearest)."""
    new, left, top = square_geometry(*image.size, size)
    if new != image.size:
        image = image.resize(new, resample)
    if image.size != (size, size):
        image = image.crop((left, top, left + size, top + size))
    return image


def load_image(path: str | os.PathLike, size: int) -> torch.Tensor:
    """Decode the image file at ``path`` with :func:`square_rgb`. JPEGs are decoded at a reduced
    scale when that still leaves the shorter side at least ``size`` (much faster for big photos)."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))
        return square_rgb(image, size)


def stack_images(count: int, size: int, get: Callable[[int], torch.Tensor],
                 workers: int | None = None) -> torch.Tensor:
    """``N×3×size×size`` uint8 tensor whose row ``i`` is ``get(i)`` (a ``3×size×size`` tensor).

    Rows are decoded by a small thread pool (PIL releases the GIL while decoding) in chunks,
    each written to its own rows, so the result does not depend on scheduling.
    """
    out = torch.empty((count, 3, size, size), dtype=torch.uint8)
    if count == 0:
        return out

    def fill(start: int) -> None:
        for i in range(start, min(start + _CHUNK, count)):
            out[i] = get(i)

    starts = range(0, count, _CHUNK)
    workers = workers or min(8, os.cpu_count() or 1, len(starts))
    if workers <= 1:
        for start in starts:
            fill(start)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(fill, starts):  # re-raises the first worker error here
                pass
    return out


def upsample(x8: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """``N x 8 x 8`` in [0, 1] -> float ``N x 1 x size x size`` (bilinear)."""
    t = torch.as_tensor(x8, dtype=torch.float32)[:, None]
    if t.shape[-1] != size:
        t = nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return t.clamp_(0, 1)


def to_uint8_rgb(t: torch.Tensor) -> torch.Tensor:
    """Float ``N x C x H x W`` in [0, 1] (C = 1 or 3) -> uint8 ``N x 3 x H x W``."""
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return (t * 255).round_().clamp_(0, 255).to(torch.uint8).contiguous()
