"""MNIST and Fashion-MNIST from tiny IDX and npz files the tests write."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from harness.data import list_datasets, load_dataset
from harness.errors import DataError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))


def _digits(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def _write_idx(folder: Path, train: np.ndarray, test: np.ndarray, gz: bool) -> None:
    folder.mkdir(parents=True)
    files = {"train-images-idx3-ubyte": train, "train-labels-idx1-ubyte": np.zeros(len(train), np.uint8),
             "t10k-images-idx3-ubyte": test, "t10k-labels-idx1-ubyte": np.zeros(len(test), np.uint8)}
    for name, array in files.items():
        data = _idx(array)
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_load_as_single_channel(tmp_path: Path, gz: bool) -> None:
    train, test = _digits(5, 0), _digits(3, 1)
    _write_idx(tmp_path / "mnist", train, test, gz)
    data = load_dataset("digits", image_size=28, data_root=tmp_path)
    assert (data.name, data.source, data.images.shape) == ("digits", "mnist", (5, 28, 28, 1))
    np.testing.assert_array_equal(data.images[..., 0], train)
    np.testing.assert_array_equal(load_dataset("mnist", image_size=28, split="test", data_root=tmp_path).images[..., 0], test)
    resized = load_dataset("mnist:digits", data_root=tmp_path)
    assert resized.images.shape == (5, 32, 32, 1) and resized.fingerprint != data.fingerprint


def test_fashion_from_a_keras_npz_and_an_explicit_path(tmp_path: Path) -> None:
    train, test = _digits(4, 2), _digits(2, 3)
    np.savez_compressed(tmp_path / "fashion_mnist.npz", x_train=train, y_train=np.zeros(4), x_test=test, y_test=np.zeros(2))
    data = load_dataset("fashion", image_size=28, data_root=tmp_path)
    assert (data.name, data.source, data.count) == ("fashion", "fashion_mnist", 4)
    np.testing.assert_array_equal(data.images[..., 0], train)
    elsewhere = load_dataset(f"fashion_mnist:fashion@{tmp_path / 'fashion_mnist.npz'}", image_size=28, split="test",
                             data_root=tmp_path / "nowhere")
    np.testing.assert_array_equal(elsewhere.images[..., 0], test)
    rows = {r["spec"]: r for r in list_datasets(tmp_path)}
    assert rows["fashion_mnist:fashion"]["count"] == 4 and rows["mnist:digits"]["available"] is False


def test_truncated_idx_is_refused(tmp_path: Path) -> None:
    _write_idx(tmp_path / "mnist", _digits(5, 0), _digits(3, 1), gz=False)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"holds 3820 bytes, not the 3920 its header promises .* truncated"):
        load_dataset("digits", data_root=tmp_path)


def test_missing_mnist_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_dataset("digits", data_root=tmp_path)
    message = str(err.value)
    assert f"put mnist.npz (keras.datasets layout) in {tmp_path}" in message and str(tmp_path / "mnist") in message
