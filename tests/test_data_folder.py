"""A user's messy image folder: every awkward format decodes correctly, every bad file is skipped and named."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data import load_dataset
from harness.data.decode import decode_file, decode_files
from harness.errors import DataError

RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 200, 20)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))


def _solid(size: tuple[int, int], colour: tuple[int, ...], mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def _good_and_bad(folder: Path) -> dict[str, str]:
    """Write one file per awkward case; return the skip reason expected for each bad file."""
    folder.mkdir(parents=True, exist_ok=True)
    _solid((40, 30), RED).save(folder / "plain.jpg", quality=95)
    _solid((30, 30), 128, "L").save(folder / "gray.png")
    _solid((30, 30), (0, 0, 255, 0), "RGBA").save(folder / "transparent.png")
    palette = _solid((30, 30), 0, "P")
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.save(folder / "palette.gif", transparency=0)
    _solid((30, 30), (0, 255, 255, 0), "CMYK").save(folder / "cmyk.jpg", quality=95)  # pure red in CMYK
    gradient = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 64).astype(np.uint16)
    Image.fromarray(gradient).save(folder / "deep.png")
    (folder / "sub dir ä").mkdir(exist_ok=True)
    _solid((32, 32), BLUE).save(folder / "sub dir ä" / "adler 鷲 foto.png")
    (folder / ".DS_Store").write_bytes(b"\0\1junk")
    # The bad ones:
    (folder / "empty.jpg").write_bytes(b"")
    good = (folder / "plain.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "notes.txt").write_text("not a picture")
    _solid((2, 2), RED).save(folder / "pixel.png")
    (folder / "gone.jpg").symlink_to(folder / "no-such-file.jpg")
    return {
        "empty.jpg": "empty file",
        "truncated.jpg": "truncated",
        "notes.txt": "not an image",
        "pixel.png": "too small: 2x2 px",
        "gone.jpg": "missing: broken link?",
    }


def test_messy_folder_decodes_the_good_and_reports_the_bad(tmp_path: Path) -> None:
    folder = tmp_path / "my eagles"
    expected = _good_and_bad(folder)
    data = load_dataset(f"folder:{folder}")
    assert (data.name, data.source, data.path) == ("my eagles", "folder", str(folder.resolve()))
    assert data.images.shape == (7, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.skipped == 5 and len(data.skipped_examples) == 5
    assert data.skipped_examples == tuple(
        f"{folder.resolve() / name} ({reason})" for name, reason in sorted(expected.items())
    )
    # Sorted relative-path order: cmyk, deep, gray, palette, plain, "sub dir ä/...", transparent.
    by_name = dict(zip(["cmyk", "deep", "gray", "palette", "plain", "sub", "transparent"], data.images))
    assert np.abs(by_name["plain"].astype(int) - RED).max() < 8
    assert np.abs(by_name["cmyk"].astype(int) - (255, 0, 0)).max() < 8
    assert (by_name["gray"] == 128).all()
    assert (by_name["transparent"] == 255).all(), "alpha is composited over white"
    assert (by_name["palette"] == 255).all(), "palette transparency is composited over white"
    assert (by_name["sub"] == BLUE).all(), "non-ASCII names and spaces work"
    deep = by_name["deep"][..., 0].astype(int)
    assert deep.min() == 0 and 240 <= deep.max() <= 255, "16-bit scaled to 8 bits, not clipped to white"
    assert (np.diff(deep[:, 0]) >= 0).all()


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    stored = np.zeros((32, 48, 3), np.uint8)
    stored[:, :24], stored[:, 24:] = RED, BLUE  # left red, right blue as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: left becomes top
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    image, reason = decode_file(str(tmp_path / "rotated.jpg"), 32)
    assert reason == "" and image is not None
    assert np.abs(image[2].astype(int) - RED).max() < 20 and np.abs(image[-3].astype(int) - BLUE).max() < 20


def test_huge_non_square_photo_is_centre_cropped_then_shrunk(tmp_path: Path) -> None:
    photo = np.empty((2000, 3000, 3), np.uint8)
    photo[:], photo[:, 1000:2000] = GREEN, RED  # a red middle third
    Image.fromarray(photo).save(tmp_path / "huge.jpg", quality=90)
    image, _ = decode_file(str(tmp_path / "huge.jpg"), 32)
    # The central 2000x2000 square keeps columns 500..2500: red spans 8..24 of 32.
    assert np.abs(image[16, 16].astype(int) - RED).max() < 12
    assert np.abs(image[16, 2].astype(int) - GREEN).max() < 12 and np.abs(image[16, 29].astype(int) - GREEN).max() < 12
    big, _ = decode_file(str(tmp_path / "huge.jpg"), 64)
    assert big.shape == (64, 64, 3)


def test_pool_decoding_matches_serial_and_keeps_order(tmp_path: Path) -> None:
    paths = []
    for i in range(6):
        _solid((20 + i, 24), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    (tmp_path / "bad.png").write_bytes(b"x")
    paths.insert(3, tmp_path / "bad.png")
    serial, skipped_serial = decode_files(paths, 16, processes=1)
    pooled, skipped_pooled = decode_files(paths, 16, processes=2)
    np.testing.assert_array_equal(serial, pooled)
    assert skipped_serial == skipped_pooled == [(str(tmp_path / "bad.png"), "not an image")]
    assert [int(im[0, 0, 0]) for im in pooled] == [i * 40 for i in range(6)]


def test_all_bad_folder_fails_with_the_reasons(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"")
    (folder / "b.txt").write_text("hello")
    with pytest.raises(DataError) as err:
        load_dataset(f"folder:{folder}")
    message = str(err.value)
    assert "has no usable images (2 files skipped as unreadable:" in message
    assert f"{folder / 'a.jpg'} (empty file)" in message and f"{folder / 'b.txt'} (not an image)" in message


def test_empty_missing_and_small_folders_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden").write_text("x")
    with pytest.raises(DataError, match="folder dataset folder .*empty holds no files"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="nowhere does not exist"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")
    (tmp_path / "few").mkdir()
    for i in range(3):
        _solid((16, 16), RED).save(tmp_path / "few" / f"{i}.png")
    with pytest.raises(DataError, match=r"'folder:few' .* has 3 usable images, fewer than the 64 needed .* at most 3"):
        load_dataset(f"folder:{tmp_path / 'few'}", min_images=64)
    assert load_dataset(f"folder:{tmp_path / 'few'}", max_images=2).count == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_skipped(tmp_path: Path) -> None:
    _solid((16, 16), RED).save(tmp_path / "locked.png")
    (tmp_path / "locked.png").chmod(0)
    assert decode_file(str(tmp_path / "locked.png"), 32) == (None, "permission denied")


def test_permission_error_is_reported_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _solid((16, 16), RED).save(tmp_path / "locked.png")

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Image, "open", denied)
    assert decode_file(str(tmp_path / "locked.png"), 32) == (None, "permission denied")
