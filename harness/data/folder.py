"""Any folder of images, searched recursively: a user's own collection.

Every regular file under the folder is a candidate, in sorted relative-path
order; hidden files and folders (".DS_Store", ".git") are ignored. Files that
do not decode are skipped and reported, never trained on. The fingerprint is
the listing (relative path, size, mtime_ns), so it costs no reads.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from harness.data.cache import Entry, Plan
from harness.data.dataset import cache_root
from harness.data.decode import decode_files
from harness.data.fingerprint import fingerprint, listing_parts
from harness.errors import DataError

log = logging.getLogger(__name__)

EXAMPLES = 5  # skipped files named in reports
PROGRESS_MIN_FILES = 1000


def list_files(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Return the candidate files under ``folder`` in sorted order, and unreadable subfolders.

    The second list holds ``(path, reason)`` for folders that could not be
    listed, so they are reported like unreadable files instead of vanishing.
    """
    errors: list[tuple[str, str]] = []
    # A cache inside the folder would change the listing on every run.
    cache = os.path.realpath(cache_root())
    found: list[Path] = []

    def on_error(exc: OSError) -> None:
        errors.append((str(exc.filename), "unreadable folder"))

    # followlinks=False: a link back up the tree must not loop forever.
    for current, dirs, files in os.walk(folder, onerror=on_error, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".") and os.path.realpath(os.path.join(current, d)) != cache]
        for name in files:
            path = Path(current, name)
            # Broken links are kept so they are reported, not silently dropped.
            if not name.startswith(".") and (path.is_file() or path.is_symlink()):
                found.append(path)
    found.sort(key=lambda p: p.relative_to(folder).as_posix())
    return found, errors


def describe_skipped(skipped: list[tuple[str, str]]) -> tuple[str, ...]:
    """Return the first few skipped files as "path (reason)" strings."""
    return tuple(f"{path} ({reason})" for path, reason in skipped[:EXAMPLES])


def check_folder(folder: Path, what: str) -> Path:
    """Return ``folder`` resolved, or raise DataError saying it is missing or not a folder."""
    if not folder.exists():
        raise DataError(f"{what} {folder} does not exist. Check the path (quote it if it has spaces).")
    if not folder.is_dir():
        raise DataError(f"{what} {folder} is a file, not a folder. Give the folder that holds the images.")
    return folder.resolve()


def plan(folder: Path, name: str, image_size: int, *, source: str = "folder") -> Plan:
    """Plan loading every image under ``folder`` as dataset ``name`` of ``source``."""
    folder = check_folder(folder, f"{source} dataset folder")
    files, errors = list_files(folder)
    if not files:
        problem = f" ({errors[0][0]} could not be read)" if errors else ""
        raise DataError(f"{source} dataset folder {folder} holds no files{problem}. Put the images there (any "
                        f"depth of subfolders), or point at the folder that holds them.")
    parts = [source, name, *listing_parts(folder, files), *(f"{p}\t{r}" for p, r in errors)]

    def build() -> Entry:
        progress = len(files) >= PROGRESS_MIN_FILES and sys.stderr.isatty()
        images, skipped = decode_files(files, image_size, progress=progress)
        skipped = errors + skipped
        return Entry(images, len(skipped), describe_skipped(skipped))

    return Plan(source, name, str(folder), fingerprint(parts, image_size), build)


def count_files(folder: Path) -> int:
    """Return how many candidate image files ``folder`` holds (not decoded)."""
    return len(list_files(folder)[0])
