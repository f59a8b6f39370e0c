"""CIFAR-10: real batches from the data root, checksum refusal, offline message, safe unpickling."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from harness.data import cifar10, list_datasets, load_cifar10, load_dataset
from harness.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _private_cache(module_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never touch the user's ~/.cache; share one cache within this module so
    # the real batches are decoded once.
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(module_cache))


def test_horses_are_the_5000_cifar_horse_training_images(data_root: Path) -> None:
    data = load_dataset("horses", data_root=data_root)
    images, labels = load_cifar10("train", data_root)
    assert data.images.dtype == np.uint8 and data.images.shape == (5000, 32, 32, 3)
    np.testing.assert_array_equal(data.images, images[labels == 7])
    assert (data.name, data.source, data.skipped) == ("horses", "cifar10", 0)
    assert data.path == str((data_root / "cifar-10-batches-py").resolve())
    params = data.params()
    assert params == {
        "data_name": "horses", "data_source": "cifar10", "data_path": data.path, "data_count": "5000",
        "data_skipped": "0", "data_fingerprint": data.fingerprint, "data_image_size": "32",
    }
    assert all(isinstance(v, str) for v in params.values())


def test_load_cifar10_matches_the_published_layout(data_root: Path) -> None:
    images, labels = load_cifar10("test", data_root)
    assert images.shape == (10000, 32, 32, 3) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10
    # The first test images are cat, ship, ship, airplane, frog (published order).
    assert labels[:5].tolist() == [3, 8, 8, 0, 6]
    # NHWC, not the stored channel-major order: a row of pixels varies smoothly.
    assert np.abs(np.diff(images[:100].astype(int), axis=2)).mean() < 30


def test_test_split_max_images_and_resize(data_root: Path) -> None:
    test = load_dataset("cifar10:horses", split="test", data_root=data_root)
    assert test.count == 1000
    first = load_dataset("horses", split="test", data_root=data_root, max_images=7)
    np.testing.assert_array_equal(first.images, test.images[:7])
    assert first.fingerprint != test.fingerprint
    big = load_dataset("horses", split="test", data_root=data_root, max_images=3, image_size=64)
    assert big.images.shape == (3, 64, 64, 3)
    # An area-preserving resize keeps each image's mean colour.
    assert np.abs(big.images.mean(axis=(1, 2)) - test.images[:3].mean(axis=(1, 2))).max() < 3


def test_fingerprint_depends_on_class_split_and_size(data_root: Path) -> None:
    prints = {
        load_dataset(n, split=s, image_size=z, data_root=data_root, max_images=2).fingerprint
        for n, s, z in [("horses", "test", 32), ("ships", "test", 32), ("horses", "test", 28)]
    }
    assert len(prints) == 3


def test_second_load_comes_from_the_cache(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset("ships", split="test", data_root=data_root)

    def fail(*args: object) -> None:
        raise AssertionError("cache missed")

    monkeypatch.setattr(cifar10, "load_class", fail)
    again = load_dataset("ships", split="test", data_root=data_root)
    np.testing.assert_array_equal(again.images, first.images)
    assert again.fingerprint == first.fingerprint


def test_offline_without_files_says_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, dest: Path) -> None:
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(cifar10, "download", offline)
    with pytest.raises(DataError) as err:
        load_dataset("horses", data_root=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "could not be downloaded" in message and "network is unreachable" in message
    assert cifar10.URL in message and cifar10.TARBALL_MD5 in message
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()


def _copy_of_test_split(src: Path, dest: Path) -> Path:
    folder = dest / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").symlink_to(src / "cifar-10-batches-py" / "test_batch")
    shutil.copy(src / "cifar-10-batches-py" / "batches.meta", folder / "batches.meta")
    return folder


def test_corrupted_file_is_refused_before_unpickling(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _copy_of_test_split(data_root, tmp_path)
    meta = folder / "batches.meta"
    meta.chmod(0o644)
    meta.write_bytes(meta.read_bytes()[:-2] + b"x.")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("unpickled a file that failed its checksum")

    monkeypatch.setattr(cifar10, "restricted_load", never)
    with pytest.raises(DataError, match=r"batches\.meta has md5 [0-9a-f]{32}, not the published 5ff9c542"):
        load_cifar10("test", tmp_path)


def test_missing_batch_file_is_named(data_root: Path, tmp_path: Path) -> None:
    folder = _copy_of_test_split(data_root, tmp_path)
    (folder / "test_batch").unlink()
    with pytest.raises(DataError, match="lacks test_batch"):
        load_cifar10("test", tmp_path)


class _Boom:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned > /dev/null",))


def test_unpickler_refuses_code_even_past_the_checksum() -> None:
    with pytest.raises(DataError, match="refusing to load global"):
        cifar10.restricted_load(pickle.dumps({b"data": _Boom()}), "evil")
    with pytest.raises(DataError, match="not uint8"):
        cifar10.restricted_load(pickle.dumps(np.zeros(3, dtype=np.float64), protocol=3), "floats")
    plain = cifar10.restricted_load(pickle.dumps({b"labels": [1, 2], b"data": np.arange(6, dtype=np.uint8).reshape(2, 3)}, protocol=3))
    np.testing.assert_array_equal(plain[b"data"], np.arange(6).reshape(2, 3))


def test_user_mistakes_name_the_input(data_root: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown dataset 'horse' \(did you mean 'horses'\?\)"):
        load_dataset("horse", data_root=data_root)
    with pytest.raises(ConfigError, match="unknown split 'validation'"):
        load_dataset("horses", split="validation", data_root=data_root)
    with pytest.raises(DataError, match=r"has 3 usable images, fewer than the 64 needed for one training batch"):
        load_dataset("horses", data_root=data_root, max_images=3, min_images=64)


def test_listing_reports_cifar_classes(data_root: Path) -> None:
    rows = {r["spec"]: r for r in list_datasets(data_root)}
    assert rows["cifar10:horses"]["available"] is True and rows["cifar10:horses"]["count"] == 5000
    assert len([s for s in rows if s.startswith("cifar10:")]) == 10


def test_importing_harness_data_does_not_import_tensorflow() -> None:
    code = "import sys, harness.data; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent).returncode == 0
