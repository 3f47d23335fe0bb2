"""scikit-learn's bundled handwritten digits: 1,797 real 8x8 images, ten classes, offline."""
import torch
from pydantic import Field
from sklearn.datasets import load_digits

import tlbench


class DigitsOptions(tlbench.Options):
    image_size: int = Field(32, ge=8, description="the 8x8 digits are upsampled (bilinear) to this size")


def load(options: DigitsOptions) -> tlbench.LoadedDataset:
    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # 0..16 -> 0..1
    x = torch.nn.functional.interpolate(x, size=options.image_size, mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    y = torch.as_tensor(digits.target, dtype=torch.long)
    return tlbench.LoadedDataset([str(c) for c in digits.target_names], {"all": tlbench.Split(x, y)})


@tlbench.hookimpl
def tlbench_datasets():
    return [tlbench.DatasetPlugin("digits", "scikit-learn's 1,797 handwritten 8x8 digits (offline)",
                                  DigitsOptions, load)]
