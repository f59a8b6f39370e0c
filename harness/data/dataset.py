"""The loaded dataset record and where data and caches live."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def data_root() -> Path:
    """Return the folder datasets are read from: ``$HARNESS_DATA_DIR``, else ``~/.cache/harness/data``."""
    env = os.environ.get("HARNESS_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "harness" / "data"


def cache_root() -> Path:
    """Return the folder for derived files: ``$HARNESS_CACHE_DIR``, else ``~/.cache/harness``.

    Kept apart from the data root so that a user's photo folder is never
    written to, and a read-only shared data folder still gets a cache.
    """
    env = os.environ.get("HARNESS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "harness"


# eq=False: comparing or hashing a record by its pixel array is meaningless
# (and a frozen dataclass with eq=True would try to hash the array).
@dataclass(frozen=True, eq=False)
class Dataset:
    """One class of images, ready to scale to [-1, 1] and train on.

    ``images`` is uint8 (N, S, S, C), NHWC, C = 3 (1 for MNIST), not scaled.
    ``fingerprint`` identifies the source bytes and the preprocessing that
    produced ``images``; two runs with the same fingerprint saw the same data.
    """

    name: str
    source: str
    images: np.ndarray
    path: str
    fingerprint: str
    skipped: int = 0
    skipped_examples: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        """Number of images."""
        return int(self.images.shape[0])

    @property
    def image_size(self) -> int:
        """Side length S of the square images."""
        return int(self.images.shape[1])

    @property
    def channels(self) -> int:
        """Channels C: 3 for colour sources, 1 for MNIST."""
        return int(self.images.shape[3])

    @property
    def spec(self) -> str:
        """The unambiguous ``source:name`` spelling of this dataset."""
        return f"{self.source}:{self.name}"

    def params(self) -> dict[str, str]:
        """Return a flat dict of strings for MLflow params, keys prefixed ``data_``."""
        return {
            "data_name": self.name,
            "data_source": self.source,
            "data_path": self.path,
            "data_count": str(self.count),
            "data_skipped": str(self.skipped),
            "data_fingerprint": self.fingerprint,
            "data_image_size": str(self.image_size),
        }
