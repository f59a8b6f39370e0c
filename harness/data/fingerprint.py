"""Content fingerprints: short hex ids of the source bytes plus the preprocessing."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

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


def listing_parts(files: Iterable[tuple[str, str]]) -> list[str]:
    """Describe ``(relative path, absolute path)`` files by relative path, size and mtime_ns.

    Cheap (one stat per file, no reads), and any added, removed, renamed,
    resized or touched file changes the result.
    """
    parts = []
    for relative, path in files:
        try:
            stat = os.stat(path)
            parts.append(f"{relative}\t{stat.st_size}\t{stat.st_mtime_ns}")
        except OSError:
            # Unreadable entries still count: they will be reported as skipped.
            parts.append(f"{relative}\t?\t?")
    return parts


def subset(fingerprint_value: str, max_images: int) -> str:
    """Return the fingerprint of the first ``max_images`` images of a dataset."""
    return hashlib.sha256(f"{fingerprint_value}\nfirst={max_images}".encode()).hexdigest()[:LENGTH]
