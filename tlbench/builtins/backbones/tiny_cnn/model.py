"""The tiny CNN's network (torch): imported by :func:`tlbench.builtins.backbones.tiny_cnn.build`."""
from torch import nn

from tlbench.modalities.image import ImageBackbone


class TinyCNN(ImageBackbone):
    """Three conv blocks (the first two halve the resolution), then global average pooling;
    :meth:`pyramid`: the first block's output (stride 2, ``width`` channels) and the last's
    (stride 4, ``4 * width``)."""

    PYRAMID_STAGES = (0, 2)

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

    def pyramid(self, x):
        maps = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.PYRAMID_STAGES:
                maps.append(x)
        return maps

    def pyramid_channels(self):
        return [self.stages[i][0].out_channels for i in self.PYRAMID_STAGES]

    def blocks(self):
        return list(self.stages)
