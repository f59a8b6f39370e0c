"""Shared fixtures: real CIFAR-10 from the data root, an isolated tracking store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# CI and developers point the harness at the shared datasets folder; a user's
# own HARNESS_DATA_DIR wins.
os.environ.setdefault("HARNESS_DATA_DIR", str((ROOT.parent / "shared" / "datasets").resolve()))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keep test processes from fighting over the two cores.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def data_root() -> Path:
    """The folder holding cifar-10-batches-py/ (skips when it is absent)."""
    root = Path(os.environ["HARNESS_DATA_DIR"])
    if not (root / "cifar-10-batches-py").is_dir():
        pytest.skip(f"CIFAR-10 not found under {root}")
    return root


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite tracking store; the test runs in tmp_path so ./mlruns lands there."""
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
