"""MNIST and Fashion-MNIST from the standard IDX files or a Keras-style .npz.

Both are 28x28 grayscale, returned as uint8 (N, S, S, 1). Looked for in
these places under the root (the data root, or the path after ``@``):

- IDX: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally
  ``.gz``) in ``mnist/`` or ``MNIST/raw/`` (``fashion_mnist/``,
  ``fashion-mnist/`` or ``FashionMNIST/raw/`` for Fashion-MNIST), or in
  the root itself when it is given with ``@``;
- npz with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (what
  ``keras.datasets`` saves): ``mnist.npz`` (``fashion_mnist.npz``) in the
  root or in the folders above, or the ``@`` path itself.

The fingerprint hashes the file contents (tens of MB, a fraction of a second).
"""

from __future__ import annotations

import gzip
import hashlib
import zipfile
from pathlib import Path

import numpy as np

from harness.data.cache import Entry, Plan
from harness.data.decode import resize_array
from harness.data.fingerprint import fingerprint
from harness.errors import DataError

# source -> (dataset name, folders under the root, npz file name)
SOURCES = {
    "mnist": ("digits", ["mnist", "MNIST/raw"], "mnist.npz"),
    "fashion_mnist": ("fashion", ["fashion_mnist", "fashion-mnist", "FashionMNIST/raw"], "fashion_mnist.npz"),
}
IDX = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_UBYTE = 0x08


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def find(source: str, root: Path, explicit: bool = False) -> list[Path]:
    """Return the files holding ``source`` under ``root``: [npz] or the four IDX files; [] if none.

    ``explicit`` (a path given with ``@``) also accepts ``root`` as the npz
    file or as the folder holding the IDX files.
    """
    _, folders, npz = SOURCES[source]
    if explicit and root.is_file():
        return [root]
    places = ([root] if explicit else []) + [root / f for f in folders]
    for place in dict.fromkeys([root, *places]):
        if (place / npz).is_file():
            return [place / npz]
    for place in places:
        files = [_idx_file(place, stem) for split in IDX.values() for stem in split]
        if all(files):
            return files  # type: ignore[return-value]
    return []


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes with ``ndim`` dimensions (gzip or not)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"IDX file {path} is a broken gzip file ({exc}). Download it again.") from None
    if len(raw) < 4 + 4 * ndim or raw[:2] != b"\0\0" or raw[2] != IDX_UBYTE or raw[3] != ndim:
        raise DataError(f"{path} is not an IDX file of {ndim}-d unsigned bytes. Download the original file again.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)):
        raise DataError(f"IDX file {path} holds {len(body)} bytes, not the {int(np.prod(shape))} its header "
                        f"promises (shape {shape}): it is truncated. Download it again.")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def count_train(files: list[Path]) -> int | None:
    """Return the number of training images from headers only, or None if unreadable."""
    try:
        if len(files) > 1:
            with open(files[0], "rb") as handle:
                gzipped = handle.read(2) == b"\x1f\x8b"
            with (gzip.open if gzipped else open)(files[0], "rb") as handle:
                return int.from_bytes(handle.read(8)[4:8], "big")
        with zipfile.ZipFile(files[0]) as archive, archive.open("x_train.npy") as member:
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            shape, _, _ = read_header[np.lib.format.read_magic(member)](member)
            return int(shape[0])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _read_npz(path: Path, split: str) -> np.ndarray:
    key = "x_train" if split == "train" else "x_test"
    try:
        with np.load(path, allow_pickle=False) as archive:
            images = archive[key]
    except KeyError:
        raise DataError(f"{path} has no {key!r} array; expected x_train, y_train, x_test, y_test.") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}). Download it again.") from None
    return images


def load_images(files: list[Path], split: str) -> np.ndarray:
    """Return the uint8 (N, 28, 28) images of ``split`` from ``find``'s files."""
    if len(files) == 1:
        images = _read_npz(files[0], split)
        where = files[0]
    else:
        where = files[0 if split == "train" else 2]
        images = read_idx(where, 3)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{where} holds {images.dtype} images of shape {images.shape[1:]}, not uint8 28x28.")
    return images


def plan(source: str, root: Path, split: str, image_size: int, explicit: bool = False) -> Plan:
    """Plan loading all of ``source`` ("mnist" or "fashion_mnist") for ``split`` from ``root``."""
    name, folders, npz = SOURCES[source]
    files = find(source, root, explicit)
    if not files:
        places = ", ".join(str(root / f) for f in folders)
        raise DataError(
            f"{source} was not found under {root}: put {npz} (keras.datasets layout) in {root}, or the four "
            f"IDX files (train-images-idx3-ubyte[.gz] ...) in one of {places}; or spell the dataset "
            f"{source}:{name}@/path/to/folder-or-npz."
        )
    used = files if len(files) == 1 else list(files[:2] if split == "train" else files[2:])
    parts = [source, name, split] + [f"{p.name}={hashlib.sha256(p.read_bytes()).hexdigest()}" for p in used]

    def build() -> Entry:
        images = load_images(files, split)[..., None]
        return Entry(np.ascontiguousarray(resize_array(images, image_size)))

    path = files[0] if len(files) == 1 else files[0].parent
    return Plan(source, name, str(path.resolve()), fingerprint(parts, image_size), build)
