"""Animals-10 in Kaggle's layout (raw-img/<italian folder>/), built by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data import cifar10, list_datasets, load_dataset
from harness.data.animals10 import ITALIAN
from harness.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))


def _animals10(raw: Path, per_class: int = 2) -> Path:
    """Write ``per_class`` small JPEGs per Italian folder; class i's images have red value 20 * i."""
    for i, italian in enumerate(sorted(ITALIAN)):
        (raw / italian).mkdir(parents=True)
        for j in range(per_class):
            Image.new("RGB", (48 + j, 40), (20 * i, 100, 100)).save(raw / italian / f"OIP-{j}.jpeg", quality=95)
    return raw


@pytest.fixture
def root(tmp_path: Path) -> Path:
    _animals10(tmp_path / "data" / "animals10" / "raw-img")
    return tmp_path / "data"


def test_italian_folders_load_under_english_names(root: Path) -> None:
    for spelling in ("animals10:horses", "animals10:cavallo"):
        data = load_dataset(spelling, data_root=root)
        assert (data.name, data.source, data.count, data.images.shape[1:]) == ("horses", "animals10", 2, (32, 32, 3))
        assert data.path == str((root / "animals10" / "raw-img" / "cavallo").resolve())
        red = 20 * sorted(ITALIAN).index("cavallo")
        assert np.abs(data.images[..., 0].astype(int) - red).max() < 6


def test_plain_name_prefers_cifar_then_animals10(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, dest: Path) -> None:
        raise OSError("offline")

    monkeypatch.setattr(cifar10, "download", offline)
    elephants = load_dataset("elephants", data_root=root)
    assert elephants.source == "animals10" and elephants.count == 2
    # horses is a CIFAR-10 class: a plain name never silently switches source,
    # so with no CIFAR files here it fails, naming where CIFAR-10 belongs.
    with pytest.raises(DataError, match="CIFAR-10 was not found in .*cifar-10-batches-py") as err:
        load_dataset("horses", data_root=root)
    assert str(err.value).endswith("For Animals-10's horses, spell the dataset animals10:horses.")


def test_other_layouts_and_an_explicit_path(tmp_path: Path) -> None:
    _animals10(tmp_path / "flat" / "raw-img", per_class=1)
    assert load_dataset("animals10:cows", data_root=tmp_path / "flat").count == 1
    _animals10(tmp_path / "kaggle download" / "raw-img", per_class=3)
    data = load_dataset(f"animals10:sheep@{tmp_path / 'kaggle download' / 'raw-img'}", data_root=tmp_path / "flat")
    assert data.count == 3 and data.path.endswith("kaggle download/raw-img/pecora")


def test_missing_animals10_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_dataset("spiders", data_root=tmp_path)
    message = str(err.value)
    assert "Animals-10 class 'spiders' (folder ragno/) was not found" in message
    assert str(tmp_path / "animals10" / "raw-img" / "ragno") in message and "kaggle.com" in message
    assert "animals10:spiders@/path/to/raw-img" in message


def test_user_mistakes(root: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown animals10 dataset 'horse' \(did you mean 'horses'\?\)"):
        load_dataset("animals10:horse", data_root=root)
    with pytest.raises(ConfigError, match=r"animals10:cows has only a train split, not 'test'"):
        load_dataset("animals10:cows", split="test", data_root=root)


def test_listing_shows_each_class_with_its_file_count(root: Path) -> None:
    (root / "animals10" / "raw-img" / "gatto" / "extra.jpeg").write_bytes(b"")
    rows = {r["spec"]: r for r in list_datasets(root)}
    assert rows["animals10:cats"]["count"] == 3 and rows["animals10:cats"]["available"] is True
    assert rows["animals10:cats"]["where"] == str(root / "animals10" / "raw-img" / "gatto")
    assert rows["cifar10:cats"]["available"] is False and rows["cifar10:cats"]["count"] is None
    assert sum(r["source"] == "animals10" for r in rows.values()) == 10
