"""The decode cache: hit on a second load, miss when the data, size or preprocessing changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data import decode, load_dataset
from harness.data import folder as folder_source


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (40, 36), (i * 50, 80, 80)).save(folder / f"photo {i}.png")
    return folder


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = folder_source.decode_files

    def counting(paths, size, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(paths))
        return real(paths, size, **kwargs)

    monkeypatch.setattr(folder_source, "decode_files", counting)
    return calls


def test_second_load_is_served_from_the_cache(cache: Path, photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_decodes(monkeypatch)
    first = load_dataset(f"folder:{photos}")
    again = load_dataset(f"folder:{photos}")
    assert calls == [4]
    np.testing.assert_array_equal(first.images, again.images)
    assert first.fingerprint == again.fingerprint
    entries = sorted(p.name for p in (cache / "datasets").iterdir())
    assert entries == [f"folder-{photos.name}-32px-v{decode.PREPROCESS_VERSION}-{first.fingerprint}.{ext}" for ext in ("json", "npy")]
    meta = json.loads((cache / "datasets" / entries[0]).read_text())
    assert (meta["count"], meta["path"], meta["skipped"]) == (4, str(photos), 0)
    assert not list(photos.glob("*.npy")), "nothing is written into the user's folder"


def test_changes_invalidate_the_cache(cache: Path, photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_decodes(monkeypatch)
    base = load_dataset(f"folder:{photos}").fingerprint
    prints = {base}
    prints.add(load_dataset(f"folder:{photos}", image_size=64).fingerprint)  # size
    stat = (photos / "photo 0.png").stat()
    os.utime(photos / "photo 0.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a touched file
    prints.add(load_dataset(f"folder:{photos}").fingerprint)
    Image.new("RGB", (40, 36)).save(photos / "photo 9.png")  # an added file
    prints.add(load_dataset(f"folder:{photos}").fingerprint)
    monkeypatch.setattr(decode, "PREPROCESS_VERSION", "test-bump")  # new preprocessing
    prints.add(load_dataset(f"folder:{photos}").fingerprint)
    assert len(prints) == 5 and calls == [4, 4, 4, 5, 5]


def test_a_damaged_entry_is_rebuilt_not_trusted(cache: Path, photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset(f"folder:{photos}")
    (npy,) = (cache / "datasets").glob("*.npy")
    npy.write_bytes(npy.read_bytes()[:200])
    calls = _count_decodes(monkeypatch)
    again = load_dataset(f"folder:{photos}")
    assert calls == [4]
    np.testing.assert_array_equal(first.images, again.images)


def test_max_images_slices_a_cached_whole(cache: Path, photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = load_dataset(f"folder:{photos}")
    calls = _count_decodes(monkeypatch)
    first_two = load_dataset(f"folder:{photos}", max_images=2)
    assert calls == [] and first_two.count == 2 and first_two.fingerprint != whole.fingerprint
    np.testing.assert_array_equal(first_two.images, whole.images[:2])
    assert load_dataset(f"folder:{photos}", max_images=99).fingerprint == whole.fingerprint


def test_an_unwritable_cache_still_loads(tmp_path: Path, photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not a dir"
    blocker.write_text("")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(blocker))
    assert load_dataset(f"folder:{photos}").count == 4


def test_a_cache_inside_the_folder_is_not_part_of_it(photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(photos / "cache"))
    calls = _count_decodes(monkeypatch)
    assert load_dataset(f"folder:{photos}").fingerprint == load_dataset(f"folder:{photos}").fingerprint
    assert calls == [4]
