"""Offline source -> target digit pairs for domain adaptation (DANN) benchmarks.

Built only from data that ships inside PyPI wheels, so they load with no network:

``digits-printed2hand``
    *source*: printed digits rendered from matplotlib's bundled fonts (21 faces of DejaVu Sans /
    Sans Mono / Serif, STIX and Computer Modern, regular/bold/italic) with random stroke
    thickening (0-3 px at 64 px), scan skew (+-5 deg), aspect jitter (+-10%) and horizontal
    shift (+-2 px of 32), kept upright as print is, then reduced exactly the way the UCI
    "optdigits" bitmaps were: height-normalised 32x32 binary bitmap, on-pixels counted in 4x4
    blocks -> 8x8 with 17 grey levels. *target*: scikit-learn's 1,797 real handwritten digits.
    Same resolution and pipeline, so the shift is the writing style alone (synthetic -> real,
    in the spirit of SynDigits -> SVHN or MNIST -> USPS).

``digits-hand2photo``
    The 1,797 handwritten digits are split into two disjoint class-stratified halves (no
    handwritten example is in both domains). *source*: one half, white on black.
    *target*: the other half drawn MNIST-M style onto patches of real scikit-image photographs:
    the image is the (blurred, dimmed) photo patch where there is no ink and its colour
    inverse where the digit is. ``background_brightness`` dims the patch into ``[0, b]``;
    1.0 is the classic full-contrast MNIST-M recipe, which with only ~630 target training
    images is hard to learn at all (small-CNN oracle ~81%), hence the default 0.4.

Both return 8x8 content upsampled (bilinear) to ``image_size``, as uint8 ``N x 3 x H x W``.
Checked learnable in both domains with a real shift: 3-conv CNN (32/64/128 channels, BN,
global pooling), 20 epochs AdamW + one-cycle, 32 px, fixed stratified 70/30 split of each
domain, mean of 3 seeds (CPU):

====================  ================  ===========  =============  ====================
pair                  source -> source  source-only  target oracle  DANN (GRL) -> target
====================  ================  ===========  =============  ====================
printed2hand          99.9              71.2         99.9           76.2
hand2photo (b=0.4)    99.3              48.1         98.4           59.5
hand2photo (b=1.0)    99.3              28.8         81.4           42.2
====================  ================  ===========  =============  ====================
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

import tlbench
from tlbench.contract.errors import UserError
from tlbench.plan.preflight import nothing_to_check

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: matplotlib font files that contain the ten digits (symbol-only faces excluded).
FONT_FILES = (
    [f"DejaVu{fam}{sty}.ttf" for fam in ("Sans", "SansMono")
     for sty in ("", "-Bold", "-Oblique", "-BoldOblique")]
    + [f"DejaVuSerif{sty}.ttf" for sty in ("", "-Bold", "-Italic", "-BoldItalic")]
    + ["STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf"]
    + ["cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmti10.ttf", "cmmi10.ttf"]
)

#: scikit-image's bundled colour photographs used as MNIST-M-style backgrounds.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


# ----------------------------------------------------------------------------- options
class PrintedToHandOptions(tlbench.Options):
    seed: int = Field(0, description="seed of the printed-digit rendering (fonts, strokes, "
                                     "rotations, shifts)")
    image_size: int = Field(32, ge=8, le=256, description="side of the square output images "
                                                          "(8x8 content upsampled bilinearly)")
    per_class: int = Field(200, ge=10, le=2000, description="printed source examples rendered "
                                                            "per digit class")


class HandToPhotoOptions(tlbench.Options):
    seed: int = Field(0, description="seed of the source/target halves and of the photo "
                                     "patches")
    image_size: int = Field(32, ge=8, le=256, description="side of the square output images "
                                                          "(8x8 digits upsampled bilinearly)")
    background_brightness: float = Field(
        0.4, gt=0.0, le=1.0,
        description="photo patches are dimmed into [0, this] before the digit is drawn in "
                    "their inverse colours; 1.0 = classic MNIST-M contrast (much harder)")


# ----------------------------------------------------------------------------- shared
def _stratified_halves(y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a, b = [], []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = len(idx) // 2
        a.append(idx[:k])
        b.append(idx[k:])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


# ----------------------------------------------------------------------------- printed digits
def _font_dir() -> str:
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


def _load_fonts(size: int):
    from PIL import ImageFont

    root = _font_dir()
    fonts = [ImageFont.truetype(os.path.join(root, f), size)
             for f in FONT_FILES if os.path.exists(os.path.join(root, f))]
    if len(fonts) < 5:
        raise UserError(f"digits-printed2hand: found only {len(fonts)} of matplotlib's fonts in "
                        f"{root}; reinstall matplotlib")
    return fonts


def render_printed(per_class: int, seed: int, rotation: float = 5.0, shear: float = 0.0,
                   aspect: tuple[float, float] = (0.9, 1.1)) -> tuple[np.ndarray, np.ndarray]:
    """Printed digits in the optdigits format: float32 ``N x 8 x 8`` in [0, 1] (multiples of
    1/16), int64 labels, ``per_class`` of each digit in class order."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    fonts = _load_fonts(64)
    canvas_px, centre = 128, 64.0
    glyphs: dict[tuple[int, int, int], Image.Image] = {}
    out = np.zeros((10 * per_class, 8, 8), np.float32)
    labels = np.repeat(np.arange(10, dtype=np.int64), per_class)
    for n, digit in enumerate(labels):
        key = (int(rng.integers(len(fonts))), int(digit), int(rng.integers(0, 4)))
        if key not in glyphs:  # a glyph, thickened by a stroke of 0-3 px at 64 px
            img = Image.new("L", (canvas_px, canvas_px), 0)
            ImageDraw.Draw(img).text((centre, centre), str(digit), fill=255, font=fonts[key[0]],
                                     anchor="mm", stroke_width=key[2], stroke_fill=255)
            glyphs[key] = img
        # scan skew: a small rotation (and optional shear) about the centre; slant comes
        # from the italic faces, as in print
        a = np.deg2rad(rng.uniform(-rotation, rotation))
        s = rng.uniform(-shear, shear)
        m = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.array([[1, s], [0, 1]])
        mi = np.linalg.inv(m)
        off = np.array([centre, centre]) - mi @ np.array([centre, centre])
        img = glyphs[key].transform(glyphs[key].size, Image.AFFINE,
                                    (mi[0, 0], mi[0, 1], off[0], mi[1, 0], mi[1, 1], off[1]),
                                    resample=Image.BILINEAR)
        ys, xs = np.nonzero(np.asarray(img) > 127)
        crop = img.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        # optdigits normalisation: full 32 px height, width by aspect (jittered), shifted
        w, h = crop.size
        nw = int(round(min(32, max(4, w * 32 / h * rng.uniform(*aspect)))))
        crop = crop.resize((nw, 32), Image.BILINEAR)
        x0 = min(max(0, (32 - nw) // 2 + int(rng.integers(-2, 3))), 32 - nw)
        bitmap = np.zeros((32, 32), np.float32)
        bitmap[:, x0:x0 + nw] = np.asarray(crop) > 127
        out[n] = bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3)) / 16.0
    return out, labels


def load_printed2hand(options: PrintedToHandOptions) -> tlbench.LoadedDataset:
    import torch

    from tlbench.modalities.digits import CLASSES, handwritten
    from tlbench.modalities.image import to_uint8_rgb, upsample

    xs, ys = render_printed(options.per_class, options.seed)
    xt, yt = handwritten()
    size = options.image_size
    return tlbench.LoadedDataset(
        classes=list(CLASSES),
        source={"all": tlbench.Split(to_uint8_rgb(upsample(xs, size)), torch.from_numpy(ys))},
        target={"all": tlbench.Split(to_uint8_rgb(upsample(xt, size)), torch.from_numpy(yt))},
    )


# ----------------------------------------------------------------------------- digits on photos
def _photos() -> list[np.ndarray]:
    import skimage.data

    out = []
    for name in PHOTOS:
        try:
            img = getattr(skimage.data, name)()
        except Exception as exc:  # pragma: no cover - broken scikit-image install
            raise UserError(f"digits-hand2photo: cannot load skimage.data.{name}() ({exc}); "
                            "reinstall scikit-image") from exc
        out.append(img[..., :3])
    return out


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    import torch
    import torch.nn.functional as F

    if sigma <= 0:
        return x
    r = max(1, int(3 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1),
                 groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1),
                    groups=c)


def photo_patches(n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """``n`` random square crops (side 0.5-1x ``size``) of the bundled photos, resized to
    ``size``: float ``n x 3 x size x size`` in [0, 1]."""
    import torch
    import torch.nn.functional as F

    photos = _photos()
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        im = photos[int(rng.integers(len(photos)))]
        c = min(int(round(size * rng.uniform(0.5, 1.0))), *im.shape[:2])
        y0 = int(rng.integers(0, im.shape[0] - c + 1))
        x0 = int(rng.integers(0, im.shape[1] - c + 1))
        p = torch.from_numpy(np.ascontiguousarray(im[y0:y0 + c, x0:x0 + c])).permute(2, 0, 1)
        p = p[None].float() / 255.0
        if c != size:
            p = F.interpolate(p, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
        out[i] = p[0]
    return out


def load_hand2photo(options: HandToPhotoOptions) -> tlbench.LoadedDataset:
    import torch

    from tlbench.modalities.digits import CLASSES, handwritten
    from tlbench.modalities.image import to_uint8_rgb, upsample

    size = options.image_size
    x, y = handwritten()
    rng = np.random.default_rng(options.seed)
    src, tgt = _stratified_halves(y, rng)
    # ink mask of the target half: contrast-stretched so strokes are solid
    ink = ((upsample(x[tgt], size) - 0.15) / 0.4).clamp_(0, 1)
    bg = _gaussian_blur(photo_patches(len(tgt), size, rng), size / 32.0)
    bg = bg * options.background_brightness
    target = bg * (1 - ink) + (1 - bg) * ink  # colour inversion of the photo where the digit is
    return tlbench.LoadedDataset(
        classes=list(CLASSES),
        source={"all": tlbench.Split(to_uint8_rgb(upsample(x[src], size)),
                                     torch.from_numpy(y[src]))},
        target={"all": tlbench.Split(to_uint8_rgb(target), torch.from_numpy(y[tgt]))},
    )


@tlbench.hookimpl
def tlbench_datasets():
    return [
        tlbench.DatasetPlugin(
            "digits-printed2hand",
            "domain shift: digits printed in 21 matplotlib fonts (2,000) -> sklearn's 1,797 "
            "handwritten digits, both in the 8x8 optdigits format",
            PrintedToHandOptions, load_printed2hand, has_target_domain=True, check=nothing_to_check),
        tlbench.DatasetPlugin(
            "digits-hand2photo",
            "domain shift: one half of sklearn's handwritten digits (896) -> the other half (901) "
            "drawn MNIST-M style on real scikit-image photo patches, RGB",
            HandToPhotoOptions, load_hand2photo, has_target_domain=True, check=nothing_to_check),
    ]
