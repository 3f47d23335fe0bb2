"""Augmentation that moves a task's targets with its images: the boxes of detection, the masks of
segmentation (``[train] augment``; the policies of :mod:`tlbench.train.augment`, by the same
names: ``crop`` and ``flip_crop``). Each example of a training batch goes through torchvision's
``transforms.v2`` with its targets as ``tv_tensors`` (``BoundingBoxes``, ``Mask``), so the crop and
the flip act on the image and its targets alike; boxes that leave the crop are dropped
(``SanitizeBoundingBoxes``). A crop keeps at least ``CROP_SCALE[0]`` of the image's area, so that
objects stay findable. Draws come from the augmenter's own generator, seeded from the cell's seed;
the global RNG is left as it was. torchvision's TrivialAugment and RandAugment take no boxes or
masks: asking for them on a dense task is a one-line error."""
from __future__ import annotations

import torch

POLICIES = ("crop", "flip_crop")
#: a crop keeps this share of the image's area, at least (objects must stay findable)
CROP_SCALE = (0.5, 1.0)


class JointAugmenter:
    """``augmenter(images, truth) -> (images, truth)`` for a batch: ``images`` uint8 ``B×C×H×W``,
    ``truth`` the task's targets (``kind="boxes"``: ``B×M×5`` ``(class, x1, y1, x2, y2)`` padded with
    class -1; ``kind="masks"``: ``B×H×W``). Made as ``Task.augment(policy, seed, device)`` is called;
    it augments where the batch lies (``device`` is not needed)."""

    def __init__(self, policy: str, seed: int, device=None, *, kind: str):
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        from tlbench.contract.errors import UserError

        if policy not in POLICIES:
            raise UserError(f"[train] augment = {policy!r} does not move boxes or masks with the image; for "
                            f"detection and segmentation use one of {', '.join(POLICIES)} (or \"none\")")
        self.kind, self.tv = kind, tv_tensors
        self.generator = torch.Generator().manual_seed(seed)
        crop = v2.RandomResizedCrop(1, scale=CROP_SCALE, antialias=True)
        self.steps = [crop] if policy == "crop" else [v2.RandomHorizontalFlip(), crop]
        self.sanitize = v2.SanitizeBoundingBoxes(min_size=1.0) if kind == "boxes" else None

    def __call__(self, images: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.transforms import v2

        size = list(images.shape[-2:])
        for step in self.steps:  # crops resample to the batch's own size
            if isinstance(step, v2.RandomResizedCrop):
                step.size = size
        transform = v2.Compose(self.steps + ([self.sanitize] if self.sanitize else []))
        seed = int(torch.randint(2**62, (), generator=self.generator))
        with torch.random.fork_rng(devices=[]):  # torchvision draws from the global CPU RNG
            torch.manual_seed(seed)
            pairs = [self._one(transform, image, target, size) for image, target in zip(images, truth)]
        out = torch.stack([image for image, _ in pairs])
        if self.kind == "masks":
            return out, torch.stack([mask for _, mask in pairs])
        rows = torch.full_like(truth, -1.0)
        for i, (_, target) in enumerate(pairs):
            rows[i, :len(target)] = target[:truth.shape[1]]
        return out, rows

    def _one(self, transform, image: torch.Tensor, target: torch.Tensor, size: list[int]):
        tv = self.tv
        if self.kind == "masks":
            image, mask = transform(image, tv.Mask(target))
            return image, mask.as_subclass(torch.Tensor)
        kept = target[target[:, 0] >= 0]
        sample = {"image": image, "boxes": tv.BoundingBoxes(kept[:, 1:], format="XYXY", canvas_size=tuple(size)),
                  "labels": kept[:, 0]}
        out = transform(sample)
        boxes = out["boxes"].as_subclass(torch.Tensor)
        return out["image"], torch.cat([out["labels"][:, None].to(boxes.dtype), boxes], 1)
