"""``imagefolder``: the user's own images, one folder per class.

Two layouts are understood::

    root/<class>/**/*.jpg                    -> one pool, split by the core (train/val/test)
    root/train/<class>/..., root/test/<class>/...[, root/val/<class>/...]
                                             -> those splits (val carved from train if absent)

A ``root/train/`` alone is treated like the first layout. Class names are the sorted names of
the class folders (of ``train/`` in the second layout); ``val/`` and ``test/`` may lack a class
but may not bring a new one. Files are read in sorted order, so loading is deterministic.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import UnidentifiedImageError
from pydantic import Field

import tlbench
from tlbench.contract.errors import UserError
from tlbench.contract.options import ExistingFolder

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["ImageFolderOptions", "check", "load", "load_folder_split", "tlbench_datasets"]

SPLIT_FOLDERS = ("train", "val", "test")


class ImageFolderOptions(tlbench.Options):
    root: ExistingFolder = Field(description="folder with one subfolder of images per class, or with "
                                       "train/ and test/ (and optionally val/) subfolders laid out so")
    image_size: int = Field(64, ge=1, description="side in pixels of the square RGB images: the "
                                                  "shorter side is resized to it, then center-cropped")


def _class_folders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    """Image files anywhere under ``folder``, in sorted (deterministic) order."""
    from tlbench.modalities.image import is_image_file

    found = []
    for current, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(current) / name for name in sorted(files) if is_image_file(name))
    return found


def _no_images(folder: Path) -> UserError:
    from tlbench.modalities.image import IMG_EXTENSIONS

    return UserError(f"imagefolder: no images in {folder} (looked for {', '.join(IMG_EXTENSIONS)} "
                     f"files in one subfolder per class)")


def load_folder_split(folder: Path, classes: list[str], image_size: int,
                      require_every_class: bool) -> tlbench.Split:
    """The images under ``folder/<class>/`` as a :class:`tlbench.Split` labelled by ``classes``."""
    return _decode(*_folder_files(folder, classes, require_every_class), image_size)


def _folder_files(folder: Path, classes: list[str], require_every_class: bool) -> tuple[list[Path], list[int]]:
    """The image files under ``folder/<class>/`` and their labels (by ``classes``)."""
    index = {name: i for i, name in enumerate(classes)}
    paths: list[Path] = []
    labels: list[int] = []
    for name in _class_folders(folder):
        if name not in index:
            raise UserError(f"imagefolder: class folder {folder / name} is not a class of the training "
                            f"images ({', '.join(classes)})")
        files = _image_files(folder / name)
        if not files and require_every_class:
            raise UserError(f"imagefolder: class folder {folder / name} has no images; add some or remove it")
        paths.extend(files)
        labels.extend([index[name]] * len(files))
    if not paths:
        raise _no_images(folder)
    return paths, labels


def _decode(paths: list[Path], labels: list[int], image_size: int) -> tlbench.Split:
    import torch

    from tlbench.modalities.image import load_image, stack_images

    def get(i: int) -> torch.Tensor:
        try:
            return load_image(paths[i], image_size)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
            raise UserError(f"imagefolder: cannot read image {paths[i]}: {exc}") from exc

    images = stack_images(len(paths), image_size, get)
    return tlbench.Split(images, torch.tensor(labels, dtype=torch.int64))


def _layout(root: Path) -> dict[str, Path]:
    """Split name -> folder of class folders."""
    present = [name for name in SPLIT_FOLDERS if (root / name).is_dir()]
    if not present:
        return {"all": root}
    others = [name for name in _class_folders(root) if name not in SPLIT_FOLDERS]
    if others:
        raise UserError(f"imagefolder: {root} has split folders ({', '.join(present)}) and other folders "
                        f"({', '.join(others)}); use either class folders or train/ and test/ (and val/)")
    if present == ["train"]:
        return {"all": root / "train"}
    if present in (["train", "test"], ["train", "val", "test"]):
        return {name: root / name for name in present}
    raise UserError(f"imagefolder: {root} has only {', '.join(n + '/' for n in present)}; give train/ and "
                    f"test/ (val/ optional), or put the class folders directly in {root}")


def load(options: ImageFolderOptions) -> tlbench.LoadedDataset:
    root = options.root
    if not root.exists():
        raise UserError(f"imagefolder: root {root} does not exist")
    if not root.is_dir():
        raise UserError(f"imagefolder: root {root} is not a folder")
    layout = _layout(root)
    first = layout.get("train", layout.get("all"))
    classes = _class_folders(first)
    if not classes:
        if _image_files(first):
            raise UserError(f"imagefolder: {first} holds images but no class folders; put each class's "
                            f"images in a subfolder named after the class")
        raise _no_images(first)
    files = {name: _folder_files(folder, classes, require_every_class=name in ("train", "all"))
             for name, folder in layout.items()}
    key = (options.image_size, tuple(classes),
           tuple((name, tuple(labels), tuple(map(_fingerprint, paths))) for name, (paths, labels) in files.items()))
    if key in _LAST:
        return _LAST[key]
    source = {name: _decode(paths, labels, options.image_size) for name, (paths, labels) in files.items()}
    dataset = tlbench.LoadedDataset(classes=classes, source=source)
    _LAST.clear()
    if sum(split.inputs.numel() for split in source.values()) <= KEEP_BYTES:
        _LAST[key] = dataset
    return dataset


#: the last dataset decoded in this process, kept when at most this many bytes, so that the
#: preflight's decode (``check``) serves the cells that run in this process
KEEP_BYTES = 256 * 2**20
_LAST: dict[tuple, tlbench.LoadedDataset] = {}


def _fingerprint(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


def check(options: ImageFolderOptions) -> None:
    """Before any cell runs: the layout is understood, no class folder is empty, and every image
    decodes (the first that does not is named). The decoded images are kept for the cells in this
    process when small (``KEEP_BYTES``)."""
    load(options)


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin("imagefolder", "your own images: one folder per class, optionally under "
                                  "train/ val/ test/", ImageFolderOptions, load, check=check)]
