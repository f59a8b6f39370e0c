"""Errors meant for people: each names the input, what was wrong and what to do.

The CLI prints ``HarnessError`` messages without a traceback and exits with
``exit_code``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import errno
import os
from collections.abc import Iterable


class HarnessError(Exception):
    """A user-facing error with a message that says what to do."""

    exit_code = 2


class ConfigError(HarnessError):
    """A bad name, flag value or configuration."""


class DataError(HarnessError):
    """Data that is missing, unreadable or too small to train on."""


class TrackingError(HarnessError):
    """The tracking store cannot be reached or written."""


class TrainingFailed(HarnessError):
    """Training stopped on a fault (e.g. a NaN loss); the run is marked FAILED."""

    exit_code = 1


def closest(name: str, choices: Iterable[str]) -> str | None:
    """Return the closest valid choice to ``name``, or None if nothing is near."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def shown(value: object) -> str:
    """``repr(value)`` for a message; a long text is cut in the middle, with its length."""
    if isinstance(value, str) and len(value) > 80:
        return f"{value[:50] + '...' + value[-25:]!r} ({len(value)} characters)"
    return repr(value)


def check_keys(table: dict, keys: Iterable[str], where: str) -> None:
    """Refuse the first key of ``table`` (a plan's table) that is not in ``keys``, naming the closest
    valid one and listing them all. ``where`` names the table (``plan.toml [tuning]``)."""
    keys = tuple(keys)
    for key in table:
        if key not in keys:
            guess = closest(key, keys)
            raise ConfigError(f"{where}: unknown key {key!r}" + (f" (did you mean {guess!r}?)" if guess else "")
                              + f"; valid keys: {', '.join(keys)}.")


def unknown_name(kind: str, name: str, choices: Iterable[str], hint: str = "") -> ConfigError:
    """Build the error for an unknown ``kind`` called ``name``, listing valid choices."""
    choices = sorted(choices)
    guess = closest(name, choices)
    message = f"unknown {kind} {shown(name)}"
    if guess:
        message += f" (did you mean {guess!r}?)"
    message += f". Valid {kind}s: {', '.join(choices)}."
    if hint:
        message += f" {hint}"
    return ConfigError(message)


# --- faults of the machine: what an OSError means for the person at the keyboard -------
_NAME_SHOWN = 80  # characters of a path shown in a message; a 20,000-character one is cut


def short_path(path: object) -> str:
    """``path`` as text, cut in the middle when it is too long to read in a message."""
    text = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
    # A newline or a terminal escape in a file name must not break the one-line message.
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(text) <= _NAME_SHOWN:
        return text
    return f"{text[:50]}...{text[-25:]} ({len(text)} characters)"


def _longest_part(path: str) -> int:
    return max((len(part.encode("utf-8", "surrogatepass")) for part in path.split(os.sep)), default=0)


def os_error_reason(exc: OSError) -> str:
    """A few words naming why ``exc`` happened (for lists of skipped files)."""
    return {
        errno.ENOENT: "missing: broken link?", errno.ELOOP: "symbolic link loop",
        errno.EACCES: "permission denied", errno.EPERM: "permission denied",
        errno.ENAMETOOLONG: "name too long", errno.EISDIR: "a folder, not a file",
        errno.ENOTDIR: "a file stands where a folder should be", errno.EIO: "input/output error",
    }.get(exc.errno, (exc.strerror or type(exc).__name__).lower())


def describe_os_error(exc: OSError) -> str:
    """One sentence naming the path ``exc`` concerns, the actual cause and what to do.

    The cause comes from ``exc.errno``: a missing folder, a name too long, a
    symbolic link loop, a permission, a full disk or quota, a read-only file
    system...; anything else keeps the system's own words.
    """
    raw = exc.filename if exc.filename is not None else ""
    path = os.fsdecode(raw) if isinstance(raw, (str, bytes, os.PathLike)) else str(raw)
    shown = short_path(path) if path else "a file"
    code = exc.errno
    if code == errno.ENOENT:
        parent = os.path.dirname(os.path.abspath(path)) if path else ""
        if parent and not os.path.isdir(parent):
            return (f"cannot use {shown}: the folder {short_path(parent)} does not exist; create it "
                    "or choose another path.")
        return f"{shown} does not exist (or is a broken link); check the path."
    if code == errno.ENAMETOOLONG:
        longest = _longest_part(path)
        limit = "255 bytes per name" if longest > 255 else "about 4,096 bytes per path"
        return (f"cannot use {shown}: the name is too long (longest part {longest} bytes; file systems "
                f"allow {limit}); choose a shorter name.")
    if code == errno.ELOOP:
        return (f"cannot use {shown}: it is, or passes through, a symbolic link loop; fix or remove "
                "the link (`ls -l` shows where each link points).")
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied on {shown}; fix its permissions or choose a path you can write to."
    if code == errno.ENOSPC:
        return f"the disk holding {shown} is full; free disk space, then run again."
    if code == errno.EDQUOT:
        return f"your disk quota is used up writing {shown}; free space in your quota, then run again."
    if code == errno.EROFS:
        return f"{shown} is on a read-only file system; choose a path on a writable disk."
    if code == errno.ENOTDIR:
        return f"cannot use {shown}: a part of it is a file, not a folder; check the path."
    if code == errno.EISDIR:
        return f"{shown} is a folder; give a file name inside it."
    if code == errno.EEXIST:
        return f"{shown} already exists; remove it or choose another name."
    if code in (errno.EMFILE, errno.ENFILE):
        return (f"too many files are open to open {shown}; close other programs or raise the limit "
                "(`ulimit -n`), then run again.")
    if code == errno.EIO:
        return f"input/output error on {shown}: the disk or network file system failed; check it, then run again."
    words = exc.strerror or str(exc) or type(exc).__name__
    return f"{words} ({shown})." if path else f"{words}."
