"""File checksums, shared by the data loaders and the metric backbones."""

from __future__ import annotations

import hashlib
from pathlib import Path


def md5_of(path: str | Path) -> str:
    """Return the hex md5 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
