"""``mask_folder``: semantic segmentation from a folder of images and a folder of masks.

Each image ``images/<stem>.<ext>`` has its mask ``masks/<stem>.png`` of the same size: one
channel (PNG mode ``L``, ``P`` or ``I``) whose value is the pixel's class index, 255 unlabelled.
``classes`` names them (index 0: the background), as a list or a text file with one name a line
(default: ``masks/classes.txt``). Images are squared as :func:`tlbench.modalities.image.square_rgb`
does, masks the same way with nearest resizing, so they stay aligned. Files are read in sorted
order; one pool, split by the core.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field

import tlbench
from tlbench.contract.errors import UserError
from tlbench.contract.options import ExistingFolder, UserPath

NAME = "mask_folder"
MASK_MODES = ("L", "P", "I", "I;16")


class MaskFolderOptions(tlbench.Options):
    images: ExistingFolder = Field(description="folder of the images")
    masks: ExistingFolder = Field(description="folder of the masks: <image stem>.png, a class index per pixel, "
                                              "255 unlabelled")
    classes: list[str] | UserPath | None = Field(None, description="class names by index (0: background), "
                                                 "or a text file of them one a line; none: masks/classes.txt")
    image_size: int = Field(64, ge=8, description="side of the square images and masks: shorter side resized "
                                                  "to it (masks: nearest), then center-cropped")


def class_names(options: MaskFolderOptions) -> list[str]:
    if isinstance(options.classes, list):
        names = options.classes
    else:
        path = options.classes or options.masks / "classes.txt"
        if not path.is_file():
            raise UserError(f"{NAME}: classes file {path} not found; give classes = [\"background\", ...] "
                            "or a text file with one class name a line")
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) < 2:
        raise UserError(f"{NAME}: classes must name the background and at least one class (got {names})")
    return names


def pairs(options: MaskFolderOptions) -> list[tuple[Path, Path]]:
    """(image, mask) paths in sorted order; a UserError names the first image without a mask."""
    from tlbench.modalities.image import is_image_file

    images = sorted(p for p in options.images.iterdir() if p.is_file() and is_image_file(p.name))
    if not images:
        raise UserError(f"{NAME}: no images in {options.images}")
    found = []
    for image in images:
        mask = options.masks / f"{image.stem}.png"
        if not mask.is_file():
            raise UserError(f"{NAME}: image {image} has no mask {mask}; add it or remove the image")
        found.append((image, mask))
    return found


def _decoded(path: Path):
    """The image file at ``path``, opened and decoded; a UserError names it if it cannot be."""
    from PIL import Image, UnidentifiedImageError

    try:
        opened = Image.open(path)
        opened.load()
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise UserError(f"{NAME}: cannot read {path}: {exc}") from None
    return opened


def _read(image_path: Path, mask_path: Path, classes: int):
    """The opened image and the mask's pixels as an array; a UserError names the file at fault."""
    import numpy as np

    from tlbench.modalities.dense import IGNORE

    image, mask = _decoded(image_path), _decoded(mask_path)
    if mask.mode not in MASK_MODES:
        raise UserError(f"{NAME}: mask {mask_path} is {mask.mode}; masks need one channel of class indices "
                        f"(PNG mode {', '.join(MASK_MODES)})")
    if mask.size != image.size:
        raise UserError(f"{NAME}: mask {mask_path} is {mask.size[0]}x{mask.size[1]}, its image {image_path} "
                        f"is {image.size[0]}x{image.size[1]}; a mask must have its image's size")
    values = np.unique(np.asarray(mask))
    bad = values[(values >= classes) & (values != IGNORE)]
    if len(bad):
        raise UserError(f"{NAME}: mask {mask_path} has value {int(bad[0])}, not a class index (0-{classes - 1}) "
                        "nor 255 (unlabelled); add the class to classes or relabel the mask")
    return image, mask


def load(options: MaskFolderOptions) -> tlbench.LoadedDataset:
    import torch

    from tlbench.modalities.dense import segmentation_split, square_mask
    from tlbench.modalities.image import square_rgb

    classes = class_names(options)
    images, masks = [], []
    for image_path, mask_path in pairs(options):
        image, mask = _read(image_path, mask_path, len(classes))
        with image, mask:
            images.append(square_rgb(image, options.image_size))
            masks.append(square_mask(mask, options.image_size))
    return tlbench.LoadedDataset(classes, {"all": segmentation_split(torch.stack(images), torch.stack(masks),
                                                                     len(classes))})


def check(options: MaskFolderOptions) -> None:
    """Before any cell runs: the classes, and every image's mask: present, one channel, the image's
    size, values among the classes or 255."""
    classes = len(class_names(options))
    for image_path, mask_path in pairs(options):
        image, mask = _read(image_path, mask_path, classes)
        image.close()
        mask.close()


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin(NAME, "semantic segmentation: an image folder and a folder of class-index "
                                  "PNG masks (same stems)", MaskFolderOptions, load, task="segmentation",
                                  check=check)]
