"""Shared fixtures: real CIFAR-10 from the data root, an isolated tracking store."""

from __future__ import annotations

import os
import shutil
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
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A tiny offline CIFAR-10 classifier backbone, trained once per session in a private
    ``$HARNESS_CACHE_DIR`` (set for the rest of the session, so runs with ``eval_every``
    find it; the real one takes 20 minutes). Without CIFAR-10 it is trained on the tiny
    stand-in (``write_tiny_cifar10``): a file of the same kind, at chance accuracy."""
    from harness.measure.backbone_training import train_backbone

    cache = tmp_path_factory.mktemp("harness-cache")
    previous, cwd = os.environ.get("HARNESS_CACHE_DIR"), os.getcwd()
    os.environ["HARNESS_CACHE_DIR"] = str(cache)
    os.chdir(cache)  # its MLflow artifacts land here, not in the repository
    try:
        with pytest.MonkeyPatch.context() as mp:
            if not (Path(os.environ["HARNESS_DATA_DIR"]) / "cifar-10-batches-py").is_dir():
                use_tiny_cifar10(mp, request.getfixturevalue("_tiny_cifar10"))
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


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite store with MLflow's schema, created once (migrations take seconds)."""
    from harness.store import tracking

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    tracking.ensure_store(f"sqlite:///{path}")
    return path


@pytest.fixture
def store_uri(empty_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh copy of that store per test; the test runs in tmp_path (./mlruns lands there)."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def graph_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny Inception stand-in (4-d features) as the graph file, accepted as "the" network."""
    from test_metrics_inception import TINY, tiny_graph_def

    from harness.measure.backbones import inception

    monkeypatch.delenv("HARNESS_INCEPTION", raising=False)
    monkeypatch.setattr(inception, "REFERENCE", TINY)
    path = tmp_path / inception.GRAPH_FILE
    path.write_bytes(tiny_graph_def()[0].SerializeToString())
    return path


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


# --- a tiny CIFAR-10 stand-in, for tests that need images but not CIFAR-10's content ---

def write_tiny_cifar10(root: Path, train_per_class: int = 130, test_per_class: int = 100) -> dict[str, str]:
    """Write ``root/cifar-10-batches-py/`` in CIFAR-10's own format (pickled dicts with
    ``b"data"`` uint8 (N, 3072) channel-major, ``b"labels"``, ``b"filenames"``,
    ``b"batch_label"``; five train batches, a test batch and ``batches.meta``) holding
    ``train_per_class`` and ``test_per_class`` random images of each of the ten classes.
    Returns each file's md5: they are not the published ones, so a test that loads it
    must put them into ``harness.data.cifar10.MD5`` (``cifar10_root`` does)."""
    import pickle

    import numpy as np

    from harness.checksums import md5_of
    from harness.data import cifar10

    folder = root / cifar10.FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def batch(name: str, per_class: int) -> None:
        labels = [label for _ in range(per_class) for label in range(10)]  # classes interleaved
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        content = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                   b"filenames": [f"tiny_{name}_{i}.png".encode() for i in range(len(labels))]}
        # Protocol 3 writes bytes natively (protocol 2 would need codecs, which the reader refuses).
        (folder / name).write_bytes(pickle.dumps(content, protocol=3))

    for name in cifar10.SPLIT_FILES["train"]:
        batch(name, train_per_class // len(cifar10.SPLIT_FILES["train"]))
    batch("test_batch", test_per_class)
    meta = {b"label_names": [label.encode() for label in cifar10.LABELS],
            b"num_cases_per_batch": train_per_class // 5 * 10, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=3))
    return {name: md5_of(folder / name) for name in cifar10.MD5}


@pytest.fixture(scope="session")
def _tiny_cifar10(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("tiny-cifar10")
    return root, write_tiny_cifar10(root)


@pytest.fixture
def cifar10_root(_tiny_cifar10: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root holding CIFAR-10 for tests that need images but not CIFAR-10's content:
    the real one when ``$HARNESS_DATA_DIR`` has it, else a tiny stand-in in its format
    (130 train and 100 test images per class, its md5s accepted for this test only;
    ``$HARNESS_DATA_DIR`` points at it for this test). Tests of the real content
    (checksums, class counts) take ``data_root`` and skip without it."""
    root = Path(os.environ["HARNESS_DATA_DIR"])
    if (root / "cifar-10-batches-py").is_dir():
        return root
    return use_tiny_cifar10(monkeypatch, _tiny_cifar10)


def use_tiny_cifar10(mp: pytest.MonkeyPatch, tiny: tuple[Path, dict[str, str]]) -> Path:
    """Point ``$HARNESS_DATA_DIR`` at the stand-in and accept its md5s, until ``mp`` undoes it
    (for module-scoped fixtures: ``with pytest.MonkeyPatch.context() as mp``)."""
    from harness.data import cifar10

    tiny_root, md5s = tiny
    mp.setattr(cifar10, "MD5", md5s)
    mp.setenv("HARNESS_DATA_DIR", str(tiny_root))
    return tiny_root
