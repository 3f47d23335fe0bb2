"""Augmentation of detection and segmentation batches moves the boxes and masks with the images."""
import pytest
import torch

from tlbench.contract.errors import UserError
from tlbench.tasks.augment import JointAugmenter


def scenes():
    """Two images with one bright rectangle each, its box and its mask (class 3 and 4)."""
    images = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    masks = torch.zeros(2, 64, 64, dtype=torch.long)
    boxes = torch.full((2, 2, 5), -1.0)
    for i, (x1, y1, x2, y2) in enumerate([(30, 10, 40, 20), (5, 40, 25, 60)]):
        images[i, :, y1:y2, x1:x2] = 255
        masks[i, y1:y2, x1:x2] = 3 + i
        boxes[i, 0] = torch.tensor([3.0 + i, x1, y1, x2, y2])
    return images, boxes, masks


@pytest.mark.parametrize("policy", ["crop", "flip_crop"])
def test_boxes_follow_the_object(policy):
    images, boxes, _ = scenes()
    augment = JointAugmenter(policy, seed=0, kind="boxes")
    for _ in range(5):
        out, moved = augment(images, boxes)
        assert out.shape == images.shape and moved.shape == boxes.shape
        for image, rows in zip(out, moved):
            bright = image[0] > 127
            if rows[0, 0] < 0:  # cropped away: then nothing bright remains either
                assert bright.sum() < 5
                continue
            x1, y1, x2, y2 = (int(round(v)) for v in rows[0, 1:].tolist())
            assert bright[y1:y2, x1:x2].sum() >= 0.9 * bright.sum()  # the box holds the object
            assert rows[1, 0] == -1  # padding stays padding


def test_masks_follow_the_object_and_draws_are_seeded():
    images, _, masks = scenes()
    out, moved = JointAugmenter("flip_crop", seed=1, kind="masks")(images, masks)
    assert ((out[:, 0] > 127) == (moved > 0)).float().mean() > 0.98
    assert set(moved.unique().tolist()) <= {0, 3, 4}
    again, moved_again = JointAugmenter("flip_crop", seed=1, kind="masks")(images, masks)
    assert torch.equal(out, again) and torch.equal(moved, moved_again)
    state = torch.random.get_rng_state()
    JointAugmenter("crop", seed=2, kind="masks")(images, masks)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is left alone


def test_a_policy_that_cannot_move_targets_is_one_line():
    with pytest.raises(UserError, match="does not move boxes or masks") as e:
        JointAugmenter("trivialaugment", seed=0, kind="boxes")
    assert "\n" not in str(e.value)
