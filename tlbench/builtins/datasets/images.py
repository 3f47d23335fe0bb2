"""Image helpers shared by the image dataset plugins.

Every image dataset turns its pictures into the same thing: an RGB ``uint8`` tensor
``N×3×S×S``, each image resized so its shorter side is ``S`` and then center-cropped to a
square (the usual ``Resize(S)`` + ``CenterCrop(S)``). Doing it in one place means that
``imagefolder`` and the torchvision sets are decoded exactly alike.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Callable

import numpy as np
import torch
from PIL import Image
from pydantic import AfterValidator
from torchvision.datasets.folder import IMG_EXTENSIONS

__all__ = ["IMG_EXTENSIONS", "UserPath", "ExistingFolder", "is_image_file", "square_rgb", "load_image", "stack_images"]

#: A ``Path`` option whose leading ``~`` is expanded when the options are validated.
UserPath = Annotated[Path, AfterValidator(lambda path: path.expanduser())]


def _existing_folder(path: Path) -> Path:
    path = path.expanduser()
    if not path.is_dir():
        raise ValueError(f"folder not found: {path}")
    return path


#: A ``UserPath`` that must be an existing folder when the suite is validated (before training).
ExistingFolder = Annotated[Path, AfterValidator(_existing_folder)]

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
    width, height = image.size
    if (width, height) != (size, size):
        if width <= height:
            new = (size, max(size, int(size * height / width)))
        else:
            new = (max(size, int(size * width / height)), size)
        if new != (width, height):
            image = image.resize(new, Image.BILINEAR)
        width, height = image.size
        left = int(round((width - size) / 2.0))
        top = int(round((height - size) / 2.0))
        image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


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

