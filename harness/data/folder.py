"""Any folder of images, searched recursively: a user's own collection.

Every regular file under the folder is a candidate, in sorted relative-path
order; hidden files and folders (".DS_Store", ".git") are ignored. Files that
do not decode are skipped and reported, never trained on. The fingerprint is
the listing (relative path, size, mtime_ns), so it costs no reads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.data.cache import Entry, Plan
from harness.data.dataset import cache_root
from harness.data.decode import decode_files
from harness.data.fingerprint import fingerprint, listing_parts
from harness.errors import DataError, os_error_reason

EXAMPLES = 5  # skipped files named in reports
PROGRESS_MIN_FILES = 1000


def list_files(folder: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Return the candidate files under ``folder`` and the folders that could not be read.

    Files come as ``(relative posix path, absolute path)`` sorted by the
    relative path; unreadable folders as ``(path, reason)``, so they are
    reported like unreadable files instead of vanishing. Plain strings and
    os.scandir, not pathlib: listing stays fast at tens of thousands of files.
    """
    # A cache inside the folder would change the listing on every run.
    cache = os.path.realpath(cache_root())
    found: list[tuple[str, str]] = []
    errors: list[tuple[str, str]] = []
    stack = [("", str(folder))]
    while stack:
        prefix, current = stack.pop()
        try:
            with os.scandir(current) as entries:
                entries = list(entries)
        except OSError:
            errors.append((current, "unreadable folder"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            relative = prefix + entry.name
            try:
                # Links to folders are not followed: a link back up the tree would loop.
                if entry.is_dir(follow_symlinks=False):
                    if os.path.realpath(entry.path) != cache:
                        stack.append((relative + "/", entry.path))
                # Every link is kept without following it here (a broken link or a link
                # loop raises only when followed), so decoding reports it by name.
                elif entry.is_symlink() or entry.is_file():
                    found.append((relative, entry.path))
            except OSError as exc:  # e.g. a file that vanished mid-listing
                errors.append((entry.path, os_error_reason(exc)))
    found.sort()
    return found, sorted(errors)


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
    parts = [source, name, *listing_parts(files), *(f"{p}\t{r}" for p, r in errors)]

    def build() -> Entry:
        progress = len(files) >= PROGRESS_MIN_FILES and sys.stderr.isatty()
        images, skipped = decode_files([path for _, path in files], image_size, progress=progress)
        skipped = errors + skipped
        return Entry(images, len(skipped), describe_skipped(skipped))

    return Plan(source, name, str(folder), fingerprint(parts, image_size), build)


def count_files(folder: Path) -> int:
    """Return how many candidate image files ``folder`` holds (not decoded)."""
    return len(list_files(folder)[0])
