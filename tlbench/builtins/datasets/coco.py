"""``coco_detection``: object detection from a COCO instances JSON and a folder of images.

``annotations`` is the training JSON (or the only one: the core then carves train/val/test);
``test`` (and ``val``) JSONs, if given, are those splits. Every JSON's ``file_name`` is relative to
``images``. Classes are the ``categories`` of ``annotations`` in sorted-id order (contiguous
0..K-1, no background). Each image is squared exactly as :func:`tlbench.modalities.image.square_rgb`
does (shorter side to ``image_size``, center crop) and its boxes ``[x, y, w, h]`` are scaled and
shifted the same way, clipped to the crop; boxes left empty are dropped, and so are images left
without a box (their stratum would be undefined). Crowd annotations (``iscrowd`` 1) are checked but
left out, as COCO's own training and scoring leave them. Images are read in image-id order.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, model_validator

import tlbench
from tlbench.contract.errors import UserError
from tlbench.contract.options import ExistingFolder, UserPath

NAME = "coco_detection"


class CocoOptions(tlbench.Options):
    annotations: UserPath = Field(description="COCO instances JSON of the training images (or of all "
                                              "of them, split by the core)")
    images: ExistingFolder = Field(description="folder that every JSON's file_name is relative to")
    val: UserPath | None = Field(None, description="COCO JSON of the validation images (needs test)")
    test: UserPath | None = Field(None, description="COCO JSON of the test images")
    image_size: int = Field(64, ge=8, description="side of the square images: shorter side resized to it, "
                                                  "then center-cropped (boxes alike)")

    @model_validator(mode="after")
    def _val_needs_test(self):
        if self.val is not None and self.test is None:
            raise ValueError("val is given without test; give test too (or neither: the core carves them)")
        return self


@dataclass(frozen=True)
class CocoImage:
    """One image of a COCO JSON and its boxes ``(class, x, y, w, h)`` in its own pixels."""

    id: int
    path: Path
    width: int
    height: int
    boxes: list[tuple[int, float, float, float, float]]


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{NAME}: annotations file {path} not found; give the path of a COCO instances JSON")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{NAME}: {path} is not valid JSON ({exc}); give a COCO instances JSON") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise UserError(f"{NAME}: {path} is not a COCO instances JSON (it needs lists \"images\", "
                        "\"annotations\" and \"categories\")")
    return data


def _categories(path: Path, data: dict) -> dict[int, tuple[int, str]]:
    """Category id -> (class index, name) of the JSON ``data`` read from ``path``, classes in sorted-id order."""
    try:
        found = {int(c["id"]): str(c["name"]) for c in data["categories"]}
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{NAME}: {path}: every category needs an integer \"id\" and a \"name\"") from None
    if not found:
        raise UserError(f"{NAME}: {path} has no categories; list the object categories under \"categories\"")
    return {cid: (k, found[cid]) for k, cid in enumerate(sorted(found))}


def _images(path: Path, data: dict, folder: Path, categories: dict[int, tuple[int, str]]) -> list[CocoImage]:
    """The images of the JSON ``data`` read from ``path``, with their boxes; a UserError names the first fault."""
    images: dict[int, CocoImage] = {}
    for entry in data["images"]:
        try:
            image = CocoImage(int(entry["id"]), folder / str(entry["file_name"]), int(entry["width"]),
                          int(entry["height"]), [])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{NAME}: {path}: image {entry.get('id', '?') if isinstance(entry, dict) else '?'} "
                            "needs an integer id, a file_name, a width and a height") from None
        images[image.id] = image
    for entry in data["annotations"]:
        where = f"{NAME}: {path}: annotation {entry.get('id', '?') if isinstance(entry, dict) else '?'}"
        try:
            image_id, category, (x, y, w, h) = (int(entry["image_id"]), int(entry["category_id"]),
                                                map(float, entry["bbox"]))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{where} needs an integer image_id and category_id and a bbox [x, y, w, h]") from None
        if category not in categories:
            known = ", ".join(map(str, list(categories)[:10])) + (", ..." if len(categories) > 10 else "")
            raise UserError(f"{where} has category_id {category}, not among the category ids ({known})")
        if image_id not in images:
            raise UserError(f"{where} is of image {image_id}, which is not among the images of {path.name}")
        image = images[image_id]
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > image.width or y + h > image.height:
            raise UserError(f"{where}: bbox [{x:g}, {y:g}, {w:g}, {h:g}] is not inside image {image_id} "
                            f"({image.width}x{image.height}); boxes are [x, y, width, height] in its pixels")
        if not entry.get("iscrowd"):
            image.boxes.append((categories[category][0], x, y, w, h))
    return [images[i] for i in sorted(images)]


def _splits(options: CocoOptions) -> tuple[list[str], dict[str, tuple[Path, list[CocoImage]]]]:
    """The class names and each split's JSON and images (their files not yet opened)."""
    data = {name: (path, _read_json(path)) for name, path in
            (("train", options.annotations), ("val", options.val), ("test", options.test)) if path is not None}
    categories = _categories(*data["train"])
    splits = {name: (path, _images(path, json_data, options.images, categories))
              for name, (path, json_data) in data.items()}
    if len(splits) == 1:
        splits = {"all": splits["train"]}
    return [name for _, name in categories.values()], splits


def _open(image: CocoImage, source: Path):
    """The opened image file; a UserError unless it exists, decodes and has the JSON's size."""
    from PIL import Image, UnidentifiedImageError

    if not image.path.is_file():
        raise UserError(f"{NAME}: {source}: image {image.id} has no file {image.path}; put it there or fix "
                        "its file_name")
    try:
        opened = Image.open(image.path)
    except (OSError, UnidentifiedImageError) as exc:
        raise UserError(f"{NAME}: {source}: image {image.id}: cannot read {image.path}: {exc}") from None
    if opened.size != (image.width, image.height):
        opened.close()
        raise UserError(f"{NAME}: {source}: image {image.id}: {image.path} is {opened.size[0]}x{opened.size[1]}, "
                        f"the JSON says {image.width}x{image.height}")
    return opened


def _squared_boxes(image: CocoImage, size: int) -> list[tuple[int, float, float, float, float]]:
    """``image``'s boxes as ``(class, x1, y1, x2, y2)`` in its squared pixels, clipped, empty ones dropped."""
    from tlbench.modalities.image import square_geometry

    (new_w, new_h), left, top = square_geometry(image.width, image.height, size)
    sx, sy = new_w / image.width, new_h / image.height
    out = []
    for cls, x, y, w, h in image.boxes:
        x1, x2 = (min(max(v * sx - left, 0.0), size) for v in (x, x + w))
        y1, y2 = (min(max(v * sy - top, 0.0), size) for v in (y, y + h))
        if x2 > x1 and y2 > y1:
            out.append((cls, x1, y1, x2, y2))
    return out


def load(options: CocoOptions) -> tlbench.LoadedDataset:
    import numpy as np
    import torch

    from tlbench.modalities.dense import detection_split
    from tlbench.modalities.image import square_rgb, stack_images

    classes, splits = _splits(options)
    source = {}
    for name, (path, images) in splits.items():
        boxes = [np.array(_squared_boxes(image, options.image_size), np.float32).reshape(-1, 5) for image in images]
        kept = [image for image, rows in zip(images, boxes) if len(rows)]
        if not kept:
            raise UserError(f"{NAME}: {path}: no image has a box inside its {options.image_size}px center crop")

        def get(i: int, kept=kept, path=path) -> torch.Tensor:
            with _open(kept[i], path) as opened:
                return square_rgb(opened, options.image_size)

        pixels = stack_images(len(kept), options.image_size, get)
        source[name] = detection_split(pixels, [rows for rows in boxes if len(rows)])
    return tlbench.LoadedDataset(classes, source)


def check(options: CocoOptions) -> None:
    """Before any cell runs: every JSON parses, every annotation's image and category exist and its
    box lies inside its image, and every image file exists with the JSON's size (headers only)."""
    _, splits = _splits(options)
    for path, images in splits.values():
        for image in images:
            _open(image, path).close()


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin(NAME, "object detection: a COCO instances JSON (optionally val/test JSONs) "
                                  "and an image folder", CocoOptions, load, task="detection", check=check)]
