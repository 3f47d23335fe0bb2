"""Standard image classification sets through torchvision's own dataset classes.

``cifar10``, ``cifar100``, ``flowers102``, ``oxford_pets``, ``dtd`` and ``eurosat`` are read from
``root`` in the layout torchvision uses (``root/cifar-10-batches-py``, ``root/flowers-102``,
``root/oxford-iiit-pet``, ``root/dtd/dtd``, ``root/eurosat/2750`` ...). With ``download = true``
torchvision fetches a missing dataset into ``root`` first; that needs internet access, so on an
offline machine download once elsewhere and copy the folder over.

The official splits are kept where a dataset has them (train/val/test for Flowers102 and DTD
partition 1, train/test for CIFAR and Oxford-IIIT Pet, whose ``trainval`` is our train); EuroSAT
has none and is split by the core. Every image becomes RGB uint8 ``3×S×S`` through the same
resize-and-center-crop as ``imagefolder``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from pydantic import Field

import tlbench
from tlbench.contract.errors import UserError
from tlbench.contract.options import UserPath

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["DEFAULT_ROOT", "PLUGINS", "SPECS", "TorchvisionSpec", "load_torchvision", "tlbench_datasets"]

DEFAULT_ROOT = Path("~/.cache/tlbench/data")


def _by_index(dataset: Any, targets: list[int]) -> dict[int, str]:
    """Label -> class name when ``dataset.classes[label]`` names the label (most datasets)."""
    return dict(enumerate(dataset.classes))


def _by_rank(dataset: Any, targets: list[int]) -> dict[int, str]:
    """Label -> class name when ``dataset.classes`` lists only the labels present, in label order
    (OxfordIIITPet builds its ``classes`` from the images of the split)."""
    return dict(zip(sorted(set(targets)), dataset.classes))


@dataclass(frozen=True)
class TorchvisionSpec:
    name: str
    help: str
    cls: str  #: class name in ``torchvision.datasets``
    splits: dict[str, dict[str, Any]]  #: our split name -> constructor keyword arguments
    folder: str  #: where the files lie under root (for messages and option help)
    image_size: int = 64
    class_names: Callable[[Any, list[int]], dict[int, str]] = field(default=_by_index)


SPECS = [
    TorchvisionSpec("cifar10", "CIFAR-10: 60k 32x32 photos of 10 object classes (official train/test)",
                    "CIFAR10", {"train": {"train": True}, "test": {"train": False}},
                    "cifar-10-batches-py", image_size=32),
    TorchvisionSpec("cifar100", "CIFAR-100: 60k 32x32 photos of 100 object classes (official train/test)",
                    "CIFAR100", {"train": {"train": True}, "test": {"train": False}},
                    "cifar-100-python", image_size=32),
    TorchvisionSpec("flowers102", "Oxford Flowers-102: 8k photos of 102 flower species (official train/val/test)",
                    "Flowers102", {s: {"split": s} for s in ("train", "val", "test")}, "flowers-102"),
    TorchvisionSpec("oxford_pets", "Oxford-IIIT Pet: 7k photos of 37 cat and dog breeds (official trainval/test)",
                    "OxfordIIITPet", {"train": {"split": "trainval"}, "test": {"split": "test"}},
                    "oxford-iiit-pet", class_names=_by_rank),
    TorchvisionSpec("dtd", "Describable Textures: 5.6k texture photos in 47 classes (official train/val/test, "
                    "partition 1)", "DTD", {s: {"split": s, "partition": 1} for s in ("train", "val", "test")},
                    "dtd/dtd"),
    TorchvisionSpec("eurosat", "EuroSAT RGB: 27k 64x64 Sentinel-2 satellite tiles of 10 land-use classes "
                    "(no official split)", "EuroSAT", {"all": {}}, "eurosat/2750"),
]


def _options_for(spec: TorchvisionSpec) -> type[tlbench.Options]:
    class TorchvisionOptions(tlbench.Options):
        root: UserPath = Field(DEFAULT_ROOT, validate_default=True,
                               description=f"folder holding the data as torchvision lays it out "
                                           f"(<root>/{spec.folder})")
        download: bool = Field(False, description="fetch the dataset into root if it is missing "
                                                  "(needs internet access)")
        image_size: int = Field(spec.image_size, ge=1,
                                description="side in pixels of the square RGB images: the shorter "
                                            "side is resized to it, then center-cropped")

    TorchvisionOptions.__name__ = TorchvisionOptions.__qualname__ = f"{spec.cls}Options"
    return TorchvisionOptions


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _open(spec: TorchvisionSpec, options: Any, kwargs: dict[str, Any]) -> Any:
    """The torchvision dataset object for one split, with torchvision's errors made user errors."""
    import torchvision.datasets

    from tlbench.modalities.image import load_image, square_rgb

    cls = getattr(torchvision.datasets, spec.cls)
    size = options.image_size
    if "loader" in inspect.signature(cls).parameters:
        kwargs = {**kwargs, "loader": lambda path: load_image(path, size)}  # decodes JPEGs at reduced scale
    else:
        kwargs = {**kwargs, "transform": lambda image: square_rgb(image, size)}
    root = options.root
    try:
        return cls(str(root), download=options.download, **kwargs)
    except ImportError as exc:
        raise UserError(f"{spec.name}: torchvision needs a missing package to read it ({_one_line(exc)})") from exc
    except (RuntimeError, OSError) as exc:
        if options.download:
            raise UserError(f"{spec.name}: could not download it into {root} ({_one_line(exc)}); downloading "
                            f"needs internet access, or put the files at {root / spec.folder} by hand") from exc
        detail = f" ({_one_line(exc)})" if isinstance(exc, OSError) else ""
        raise UserError(f"{spec.name}: dataset files not found or incomplete under {root}{detail}; set "
                        f"download = true (needs internet access) to fetch them into {root}") from exc


def _decode(spec: TorchvisionSpec, options: Any, dataset: Any) -> tuple[torch.Tensor, list[int]]:
    import torch

    from tlbench.modalities.image import stack_images

    size = options.image_size
    data = getattr(dataset, "data", None)
    if (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.shape[1:] == (size, size, 3)
            and len(getattr(dataset, "targets", ())) == len(data)):
        # in-memory RGB arrays already at the requested size (CIFAR at 32): square_rgb would
        # return each unchanged, so skip the per-image round trip through PIL
        return torch.from_numpy(data).permute(0, 3, 1, 2).contiguous(), [int(t) for t in dataset.targets]
    targets = [0] * len(dataset)

    def get(i: int) -> torch.Tensor:
        image, target = dataset[i]
        targets[i] = int(target)
        return image

    try:
        images = stack_images(len(dataset), size, get)
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{spec.name}: a file under {options.root / spec.folder} cannot be read "
                        f"({_one_line(exc)}); delete the folder and download it again") from exc
    return images, targets


def load_torchvision(spec: TorchvisionSpec, options: Any) -> tlbench.LoadedDataset:
    """Every official split of ``spec``'s dataset, with one class list across the splits."""
    import torch

    opened = {split: _open(spec, options, kwargs) for split, kwargs in spec.splits.items()}
    decoded = {split: _decode(spec, options, dataset) for split, dataset in opened.items()}
    names = {split: spec.class_names(opened[split], targets) for split, (_, targets) in decoded.items()}

    orders = [list(dataset.classes) for dataset in opened.values()]
    if all(order == orders[0] for order in orders):
        classes = orders[0]  # the dataset's own order (CIFAR's meta file, Flowers' list, ...)
    else:  # a split lacks some classes (DTD and Pets list only the classes they hold)
        classes = sorted({name for mapping in names.values() for name in mapping.values()})
    index = {name: i for i, name in enumerate(classes)}
    source = {}
    for split, (images, targets) in decoded.items():
        labels = torch.tensor([index[names[split][t]] for t in targets], dtype=torch.int64)
        source[split] = tlbench.Split(images, labels)
    return tlbench.LoadedDataset(classes=classes, source=source)


def check_torchvision(spec: TorchvisionSpec, options: Any) -> None:
    """Before any cell runs: every official split opens (torchvision finds and verifies its files,
    or downloads them when ``download`` is set). A file that does not decode is found by the load."""
    for kwargs in spec.splits.values():
        _open(spec, options, kwargs)


def _plugin(spec: TorchvisionSpec) -> tlbench.DatasetPlugin:
    return tlbench.DatasetPlugin(spec.name, spec.help, _options_for(spec),
                                 lambda options: load_torchvision(spec, options),
                                 check=lambda options: check_torchvision(spec, options))


PLUGINS = [_plugin(spec) for spec in SPECS]


@tlbench.hookimpl
def tlbench_datasets():
    return list(PLUGINS)
