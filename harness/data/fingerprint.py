"""Content fingerprints: short hex ids of the source bytes plus the preprocessing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from harness.data import decode

LENGTH = 16  # hex digits (64 bits): short enough for a table, far from collisions


def fingerprint(parts: Iterable[str], image_size: int) -> str:
    """Return the fingerprint of a source described by ``parts`` at ``image_size``.

    ``parts`` must change whenever the source bytes change (published
    checksums, or a listing of relative path, size and mtime).
    """
    digest = hashlib.sha256(f"preprocess={decode.PREPROCESS_VERSION}\nsize={image_size}\n".encode())
    for part in parts:
        digest.update(part.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()[:LENGTH]


def listing_parts(root: Path, files: Iterable[Path]) -> list[str]:
    """Describe ``files`` under ``root`` by (relative path, size, mtime_ns): cheap, no reads.

    Any added, removed, renamed, resized or touched file changes the result.
    """
    parts = []
    for path in files:
        try:
            stat = path.stat()
            parts.append(f"{path.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}")
        except OSError:
            # Unreadable entries still count: they will be reported as skipped.
            parts.append(f"{path.relative_to(root).as_posix()}\t?\t?")
    return parts


def subset(fingerprint_value: str, max_images: int) -> str:
    """Return the fingerprint of the first ``max_images`` images of a dataset."""
    return hashlib.sha256(f"{fingerprint_value}\nfirst={max_images}".encode()).hexdigest()[:LENGTH]
