"""Errors meant for people: each names the input, what was wrong and what to do.

The CLI prints ``HarnessError`` messages without a traceback and exits with
``exit_code``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
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


def unknown_name(kind: str, name: str, choices: Iterable[str], hint: str = "") -> ConfigError:
    """Build the error for an unknown ``kind`` called ``name``, listing valid choices."""
    choices = sorted(choices)
    guess = closest(name, choices)
    message = f"unknown {kind} {name!r}"
    if guess:
        message += f" (did you mean {guess!r}?)"
    message += f". Valid {kind}s: {', '.join(choices)}."
    if hint:
        message += f" {hint}"
    return ConfigError(message)
