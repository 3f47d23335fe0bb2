"""A complete third-party tlbench plugin: one dataset and one strategy."""
import numpy as np
import skimage.data
import torch
from pydantic import Field

import tlbench


class TexturesOptions(tlbench.Options):
    per_class: int = Field(60, gt=0, description="random 32x32 patches cut from each texture photo")


def load_textures(options: TexturesOptions) -> tlbench.LoadedDataset:
    """Patches of scikit-image's brick, grass and gravel photos, one class each."""
    names = ["brick", "grass", "gravel"]
    rng = np.random.default_rng(0)
    images, labels = [], []
    for label, name in enumerate(names):
        photo = getattr(skimage.data, name)()
        for _ in range(options.per_class):
            r, c = rng.integers(0, photo.shape[0] - 32), rng.integers(0, photo.shape[1] - 32)
            images.append(np.repeat(photo[r:r + 32, c:c + 32, None], 3, axis=2))
            labels.append(label)
    x = torch.as_tensor(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return tlbench.LoadedDataset(names, {"all": tlbench.Split(x, torch.tensor(labels))})


class CentroidOptions(tlbench.Options):
    pass


def nearest_centroid(ctx: tlbench.CellContext, options: CentroidOptions) -> tlbench.Outcome:
    """Classify frozen features by cosine similarity to each class's mean training feature."""
    features = ctx.features()
    train = torch.nn.functional.normalize(features.splits["train"], dim=1)
    labels = ctx.data["train"].labels.cpu()
    centroids = torch.zeros(ctx.num_classes, train.shape[1]).index_add_(0, labels, train)
    centroids = torch.nn.functional.normalize(centroids, dim=1)
    logits = {name: torch.nn.functional.normalize(features.splits[name], dim=1) @ centroids.T
              for name in ctx.eval_splits}
    return tlbench.Outcome(logits, trainable_params=0, total_params=features.backbone_params)


@tlbench.hookimpl
def tlbench_datasets() -> list[tlbench.DatasetPlugin]:
    return [tlbench.DatasetPlugin("textures", "brick / grass / gravel patches from scikit-image",
                                  TexturesOptions, load_textures)]


@tlbench.hookimpl
def tlbench_strategies() -> list[tlbench.StrategyPlugin]:
    return [tlbench.StrategyPlugin("nearest_centroid", "cosine nearest class mean on frozen features",
                                   CentroidOptions, nearest_centroid)]
