"""scikit-learn's bundled handwritten digits: 1,797 real 8x8 images, ten classes, offline.

The digits themselves (:func:`tlbench.modalities.digits.handwritten`) and their conversion
(:func:`tlbench.modalities.image.upsample`, :func:`~tlbench.modalities.image.to_uint8_rgb`) are
shared with the digit domain-shift pairs, so every digit dataset is drawn the same way.
"""
from pydantic import Field

import tlbench
from tlbench.plan.preflight import nothing_to_check


class DigitsOptions(tlbench.Options):
    image_size: int = Field(32, ge=8, description="the 8x8 digits are upsampled (bilinear) to this size")


def load(options: DigitsOptions) -> tlbench.LoadedDataset:
    import torch

    from tlbench.modalities.digits import CLASSES, handwritten
    from tlbench.modalities.image import to_uint8_rgb, upsample

    x, y = handwritten()
    images = to_uint8_rgb(upsample(x, options.image_size))
    return tlbench.LoadedDataset(list(CLASSES), {"all": tlbench.Split(images, torch.from_numpy(y))})


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin("digits", "scikit-learn's 1,797 handwritten 8x8 digits (offline)",
                                  DigitsOptions, load, check=nothing_to_check)]
