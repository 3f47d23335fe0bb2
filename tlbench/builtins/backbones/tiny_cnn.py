"""A three-block CNN for fast tests and tiny images; it has no pretrained weights."""
import torch
from pydantic import Field
from torch import nn

import tlbench
from tlbench.modalities.image import ImageBackbone
from tlbench.plan.preflight import nothing_to_check


class TinyCNNOptions(tlbench.Options):
    width: int = Field(16, gt=0, description="channels of the first block (doubled per block)")
    input_size: int = Field(16, gt=0, description="images are resized to this square size")


class TinyCNN(ImageBackbone):
    def __init__(self, width: int, input_size: int):
        super().__init__()
        self.input_size = input_size
        self.feature_dim = 4 * width
        chans = [3, width, 2 * width, 4 * width]
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                          nn.MaxPool2d(2) if i < 2 else nn.Identity())
            for i, (cin, cout) in enumerate(zip(chans, chans[1:])))
        self.lora_targets = [f"stages.{i}.0" for i in range(1, 3)]

    def forward(self, x):
        for stage in self.stages:
            x = stage(x)
        return x.mean((2, 3))

    def blocks(self):
        return list(self.stages)


def build(options: TinyCNNOptions, pretrained: bool) -> TinyCNN:
    """Randomly initialised. ``pretrained=True`` gives one fixed random network (seed 0), as real
    pretrained weights are fixed: its features are then the same whichever cell, process or worker
    computes them first (the feature cache is keyed on the backbone's options)."""
    if not pretrained:
        return TinyCNN(options.width, options.input_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return TinyCNN(options.width, options.input_size)


@tlbench.hookimpl
def tlbench_backbones():
    return [tlbench.BackbonePlugin("tiny_cnn", "three conv blocks, random init (pretrained: a fixed seed-0 init); for tests and smoke runs",
                                   TinyCNNOptions, build, check=nothing_to_check)]
