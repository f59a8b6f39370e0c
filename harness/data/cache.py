"""Decode once: preprocessed uint8 arrays stored as .npy plus a small JSON meta.

An entry's file name holds the source, dataset name, image size,
preprocessing version and content fingerprint, so a change in any of them
misses the cache and rebuilds. Entries live under ``cache_root()/datasets``,
never in the data folder or the repository.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.data import decode
from harness.data.dataset import cache_root


@dataclass(frozen=True)
class Entry:
    """What a cache entry holds besides the array: the skipped-file report."""

    images: np.ndarray
    skipped: int = 0
    skipped_examples: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Plan:
    """How to get one dataset: where it is, its fingerprint, and how to build it on a cache miss."""

    source: str
    name: str
    path: str
    fingerprint: str
    build: Callable[[], Entry]


def cache_dir() -> Path:
    """Return the folder holding dataset cache entries."""
    return cache_root() / "datasets"


def entry_stem(source: str, name: str, image_size: int, fingerprint: str) -> str:
    """Return the file stem of the entry for this key (safe for any file system)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]
    return f"{source}-{safe}-{image_size}px-v{decode.PREPROCESS_VERSION}-{fingerprint}"


def _read(stem: Path, fingerprint: str) -> Entry | None:
    meta_path, array_path = stem.with_suffix(".json"), stem.with_suffix(".npy")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        images = np.load(array_path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    # A torn or foreign entry is rebuilt rather than trusted.
    if meta.get("fingerprint") != fingerprint or images.dtype != np.uint8 or len(images) != meta.get("count"):
        return None
    return Entry(images, int(meta.get("skipped", 0)), tuple(meta.get("skipped_examples", ())))


def _atomic_write(path: Path, write: Callable[[object], None], mode: str) -> None:
    # Write beside the target and rename, so a crash or a concurrent run never
    # leaves a half-written entry under the final name.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write(stem: Path, entry: Entry, meta: dict) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(stem.with_suffix(".npy"), lambda h: np.save(h, entry.images, allow_pickle=False), "wb")
    meta = {**meta, "count": len(entry.images), "skipped": entry.skipped,
            "skipped_examples": list(entry.skipped_examples)}
    _atomic_write(stem.with_suffix(".json"), lambda h: h.write(json.dumps(meta, indent=1)), "w")


def cached(
    source: str, name: str, image_size: int, fingerprint: str, build: Callable[[], Entry], *, path: str = ""
) -> Entry:
    """Return the cached entry for this key, or call ``build``, store and return its result.

    An unwritable cache folder is not an error: the entry is built and
    returned, and the next run builds it again.
    """
    stem = cache_dir() / entry_stem(source, name, image_size, fingerprint)
    hit = _read(stem, fingerprint)
    if hit is not None:
        return hit
    entry = build()
    meta = {"source": source, "name": name, "path": path, "image_size": image_size,
            "preprocess_version": decode.PREPROCESS_VERSION, "fingerprint": fingerprint}
    try:
        _write(stem, entry, meta)
    except OSError:
        pass
    return entry
