"""The tiny CNN's network (torch): imported by :func:`tlbench.builtins.backbones.tiny_cnn.build`."""
from torch import nn

from tlbench.modalities.image import ImageBackbone


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
