"""Shared fixtures: real CIFAR-10 from the data root, an isolated tracking store."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny offline CIFAR-10 classifier backbone, trained once per session in a private
    ``$HARNESS_CACHE_DIR`` (set for the rest of the session, so runs with ``eval_every``
    find it; the real one takes 20 minutes). Skips when CIFAR-10 is absent."""
    root = Path(os.environ["HARNESS_DATA_DIR"])
    if not (root / "cifar-10-batches-py").is_dir():
        pytest.skip(f"CIFAR-10 not found under {root}")
    from harness.measure.backbone_training import train_backbone

    cache = tmp_path_factory.mktemp("harness-cache")
    previous, cwd = os.environ.get("HARNESS_CACHE_DIR"), os.getcwd()
    os.environ["HARNESS_CACHE_DIR"] = str(cache)
    os.chdir(cache)  # its MLflow artifacts land here, not in the repository
    try:
        train_backbone(epochs=1, max_images=128, channels=2, batch_size=128, cache_dir=cache, jit_compile=False,
                       tracking_uri=f"sqlite:///{cache / 'backbone.db'}", log=lambda *_: None)
    finally:
        os.chdir(cwd)
    yield cache
    if previous is None:
        os.environ.pop("HARNESS_CACHE_DIR", None)
    else:
        os.environ["HARNESS_CACHE_DIR"] = previous


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite tracking store; the test runs in tmp_path so ./mlruns lands there."""
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def postgres_url() -> str:
    """The server .ci/postgres.sh started; CI must have one, elsewhere the test skips
    (checked before the other fixtures train anything)."""
    url = os.environ.get("HARNESS_TEST_POSTGRES_URL")
    if not url and os.environ.get("CI") == "true":
        pytest.fail("CI=true but HARNESS_TEST_POSTGRES_URL is unset: start PostgreSQL with "
                    "`eval \"$(.ci/postgres.sh)\"` before the tests.")
    if not url:
        pytest.skip("HARNESS_TEST_POSTGRES_URL is unset; start a local server with `eval \"$(.ci/postgres.sh)\"`.")
    return url
