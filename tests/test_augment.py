"""Batched uint8 image augmentation (tlbench.train.augment): shapes, determinism, per-example draws."""
import pytest
import torch

from tlbench.train.augment import CHUNKS, Augmenter, random_resized_crop
from tlbench.contract.errors import UserError

POLICIES = ["crop", "flip_crop", "trivialaugment", "randaugment"]


@pytest.fixture(scope="module")
def images():
    """16 copies of one structured image (a gradient and a bright square): any difference
    between the outputs comes from the augmentation's draws."""
    x = torch.linspace(0, 255, 16).repeat(3, 16, 1)
    x[:, 4:9, 2:6] = 255
    return x.to(torch.uint8).expand(16, -1, -1, -1).contiguous()


@pytest.mark.parametrize("policy", POLICIES)
def test_shape_dtype_and_determinism(policy, images):
    out = Augmenter(policy, seed=3, device=torch.device("cpu"))(images)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(out, Augmenter(policy, seed=3, device=torch.device("cpu"))(images))  # same seed, same batch
    assert not torch.equal(out, Augmenter(policy, seed=4, device=torch.device("cpu"))(images))


@pytest.mark.parametrize("policy", POLICIES)
def test_draws_differ_between_examples(policy, images):
    out = Augmenter(policy, seed=0, device=torch.device("cpu"))(images)
    distinct = len({bytes(o.flatten().tolist()) for o in out})
    # crop and flip: drawn per example; torchvision's policies: per chunk of the batch
    assert distinct >= (len(images) if "crop" in policy else CHUNKS // 2)


def test_the_global_rng_is_untouched(images):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    Augmenter("trivialaugment", seed=1, device=torch.device("cpu"))(images)
    assert torch.equal(torch.rand(3), expected)


def test_flip_mirrors_the_same_crops(images):
    crops = random_resized_crop(images, torch.Generator().manual_seed(0))
    assert ((crops.float() - images.float()).abs().mean(dim=(1, 2, 3)) > 0).all()  # every image cropped
    flipped = random_resized_crop(images, torch.Generator().manual_seed(0), flip=True)
    mirrored = [torch.equal(f, c.flip(-1)) for f, c in zip(flipped, crops)]
    unchanged = [torch.equal(f, c) for f, c in zip(flipped, crops)]
    assert all(m or u for m, u in zip(mirrored, unchanged)) and 0 < sum(mirrored) < len(images)


def test_text_inputs_are_an_error():
    with pytest.raises(UserError, match=r"augment = 'crop'.*not images"):
        Augmenter("crop", seed=0, device=torch.device("cpu"))({"input_ids": torch.zeros(2, 3, dtype=torch.long)})
