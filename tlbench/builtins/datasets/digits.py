"""scikit-learn's bundled handwritten digits: 1,797 real 8x8 images, ten classes, offline.

``handwritten``, ``upsample`` and ``to_uint8_rgb`` also build the digit domain-shift pairs
(``shift_digits``), so every digit dataset is drawn the same way.
"""
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

import tlbench
from tlbench.plan.preflight import nothing_to_check

CLASSES = [str(i) for i in range(10)]


class DigitsOptions(tlbench.Options):
    image_size: int = Field(32, ge=8, description="the 8x8 digits are upsampled (bilinear) to this size")


def handwritten() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits: float32 ``N x 8 x 8`` in [0, 1], int64 labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def upsample(x8: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """``N x 8 x 8`` in [0, 1] -> float ``N x 1 x size x size`` (bilinear)."""
    t = torch.as_tensor(x8, dtype=torch.float32)[:, None]
    if t.shape[-1] != size:
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return t.clamp_(0, 1)


def to_uint8_rgb(t: torch.Tensor) -> torch.Tensor:
    """Float ``N x C x H x W`` in [0, 1] (C = 1 or 3) -> uint8 ``N x 3 x H x W``."""
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return (t * 255).round_().clamp_(0, 255).to(torch.uint8).contiguous()


def load(options: DigitsOptions) -> tlbench.LoadedDataset:
    x, y = handwritten()
    images = to_uint8_rgb(upsample(x, options.image_size))
    return tlbench.LoadedDataset(list(CLASSES), {"all": tlbench.Split(images, torch.from_numpy(y))})


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin("digits", "scikit-learn's 1,797 handwritten 8x8 digits (offline)",
                                  DigitsOptions, load, check=nothing_to_check)]
