"""Training-time image augmentation on batched ``uint8`` tensors, on the cell's device.

``[train] augment`` picks one policy; the training loop applies it to each training batch of
images (``N×C×H×W`` uint8, before the backbone's ``prepare`` resizes and normalises), outside the
compiled step:

* ``"crop"``: a random resized crop of each image (area ``CROP_SCALE`` of the image, aspect ratio
  ``CROP_RATIO``) resampled back to its size, as Inception / timm's ``RandomResizedCrop`` with a
  milder minimum area (a 32-pixel image has little to lose);
* ``"flip_crop"``: the same and a horizontal flip with probability 1/2 (the BiT-HyperRule's
  augmentation for transfer). Not for data whose classes a mirror changes (digits, text in images);
* ``"trivialaugment"``: TrivialAugment-Wide (Müller & Hutter 2021), one random op at a random
  magnitude, from ``torchvision.transforms.v2``;
* ``"randaugment"``: RandAugment (Cubuk et al. 2020), 2 ops at magnitude 9 (timm's ``rand-m9-n2``).

Crop and flip are drawn per example in one vectorised ``grid_sample`` (no Python loop over
images). torchvision's v2 policies draw one op for the whole tensor they get, so the batch is
split into ``CHUNKS`` chunks that draw apart: per-example randomness up to the chunk. Every draw
comes from the augmenter's own generators, seeded from the cell's seed: the same seed gives the
same augmented batches, and the global RNG is left as it was.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from tlbench.contract.errors import UserError

POLICIES = ("none", "crop", "flip_crop", "trivialaugment", "randaugment")
CROP_SCALE = (0.25, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
CHUNKS = 8


class Augmenter:
    """``augmenter(images) -> images``: one policy of :data:`POLICIES` (not ``"none"``)."""

    def __init__(self, policy: str, seed: int, device: torch.device):
        if policy not in POLICIES[1:]:
            raise ValueError(f"unknown augmentation {policy!r}; one of {', '.join(POLICIES[1:])}")
        self.policy = policy
        self.device_generator = torch.Generator(device=device).manual_seed(seed)
        self.cpu_generator = torch.Generator().manual_seed(seed)
        self.transform = None
        if policy in ("trivialaugment", "randaugment"):
            from torchvision.transforms import v2
            self.transform = v2.TrivialAugmentWide() if policy == "trivialaugment" else v2.RandAugment(2, 9)

    def __call__(self, images) -> torch.Tensor:
        if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.ndim == 4):
            raise UserError(f"[train] augment = {self.policy!r} augments images (uint8 N×C×H×W); this cell's "
                            'inputs are not images (text?): set [train] augment = "none" for it')
        if self.transform is None:
            return random_resized_crop(images, self.device_generator, flip=self.policy == "flip_crop")
        seed = int(torch.randint(2**62, (), generator=self.cpu_generator))
        with torch.random.fork_rng(devices=[]):  # torchvision draws its ops from the global CPU RNG
            torch.manual_seed(seed)
            return torch.cat([self.transform(chunk) for chunk in images.tensor_split(CHUNKS)])


def random_resized_crop(images: torch.Tensor, generator: torch.Generator, flip: bool = False) -> torch.Tensor:
    """Each image cropped at a random box (area in ``CROP_SCALE``, aspect ratio in ``CROP_RATIO``,
    within the image) and resized back to ``H×W`` (bilinear), optionally mirrored with
    probability 1/2; all examples at once through one affine grid."""
    n, device = images.shape[0], images.device
    u = torch.rand(n, 5, generator=generator, device=device)
    scale = CROP_SCALE[0] + (CROP_SCALE[1] - CROP_SCALE[0]) * u[:, 0]
    log_ratio = math.log(CROP_RATIO[0]) + (math.log(CROP_RATIO[1]) - math.log(CROP_RATIO[0])) * u[:, 1]
    ratio = log_ratio.exp()
    width = (scale * ratio).sqrt().clamp(max=1.0)  # fractions of the image side
    height = (scale / ratio).sqrt().clamp(max=1.0)
    centre_x = (1 - width) * (2 * u[:, 2] - 1)  # in [-1, 1] coordinates, the box inside the image
    centre_y = (1 - height) * (2 * u[:, 3] - 1)
    mirror = torch.where(u[:, 4] < 0.5, -1.0, 1.0) if flip else torch.ones(n, device=device)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 2] = width * mirror, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    out = nn.functional.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border",
                                    align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)
