"""Flags several commands share: where the data is, where tracking is, comma-separated lists."""

from __future__ import annotations

import argparse

from harness import flags
from harness.config import RunConfig


def add_data_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", help="folder holding the datasets (default: $HARNESS_DATA_DIR, "
                                            "else ~/.cache/harness/data)")


def add_tracking(parser: argparse.ArgumentParser) -> None:
    flags.add_flags(parser, RunConfig, only=["tracking_uri"])


def names(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [item.strip() for item in text.split(",") if item.strip()]
