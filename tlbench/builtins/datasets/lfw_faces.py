"""Faces vs non-faces: scikit-image's bundled subset of Labeled Faces in the Wild, offline.

``skimage.data.lfw_subset()``: 200 grey 25x25 crops; per its documentation the first 100 are
faces (random LFW faces) and the next 100 non-faces (background crops of the same photos).
A small binary task: class 0 ``face``, class 1 ``non-face``.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

import tlbench
from tlbench.plan.preflight import nothing_to_check

CLASSES = ["face", "non-face"]


class LfwFacesOptions(tlbench.Options):
    image_size: int = Field(25, ge=8, le=256, description="side of the square images (25: the crops' "
                                                          "own; other sizes: bilinear resize)")


def lfw_arrays() -> tuple[np.ndarray, np.ndarray]:
    """float32 ``200 x 25 x 25`` in [0, 1] and int64 labels (100 faces, then 100 non-faces)."""
    import skimage.data

    x = np.asarray(skimage.data.lfw_subset(), np.float32)
    return x, np.repeat(np.arange(2, dtype=np.int64), len(x) // 2)


def load(options: LfwFacesOptions) -> tlbench.LoadedDataset:
    import torch

    from tlbench.modalities.image import to_uint8_rgb, upsample

    x, y = lfw_arrays()
    images = to_uint8_rgb(upsample(x, options.image_size))
    return tlbench.LoadedDataset(list(CLASSES), {"all": tlbench.Split(images, torch.from_numpy(y))})


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin(
        "lfw_faces", "faces vs non-faces: scikit-image's 200 LFW crops 25x25 (bundled, offline)",
        LfwFacesOptions, load, check=nothing_to_check)]
