"""Hostile inputs, each made here: link loops, checkpoints that lie (end to end; the reader's
own sweep is in test_checkpoints.py), damaged tracking stores, image bombs, paths the system
refuses. Each ends in a named skip, a fallback or one clear HarnessError; none in a
traceback, none modifies the input."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from run_metrics import die_before_logging

from harness.config import RunConfig
from harness.data import decode, load_dataset
from harness.errors import HarnessError, TrackingError, describe_os_error
from harness.store import tracking
from harness.train import checkpoints
from harness.train import run as train

ROOT = Path(__file__).resolve().parent.parent


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- a folder dataset with a link loop ---------------------------------------------------
def test_a_symlink_loop_in_a_folder_dataset_is_skipped_and_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "photos"
    (folder / "deep").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (20, 20), (40 * i, 10, 10)).save(folder / f"{i}.png")
    (folder / "a.png").symlink_to("b.png")
    (folder / "b.png").symlink_to("a.png")
    (folder / "deep" / "self.jpg").symlink_to("self.jpg")  # a loop one folder down
    data = load_dataset(f"folder:{folder}")
    assert data.images.shape == (3, 32, 32, 3)
    assert data.skipped == 3
    assert set(data.skipped_examples) == {f"{folder.resolve() / name} (symbolic link loop)"
                                          for name in ("a.png", "b.png", "deep/self.jpg")}


# --- checkpoints that lie, end to end ------------------------------------------------------
@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    tracking.ensure_store(f"sqlite:///{path}")
    return path


@pytest.fixture
def store_copy(empty_store, tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    # Logging the generator as an MLflow model takes seconds and is not checked here.
    monkeypatch.setattr(tracking.RunLogger, "log_generator", lambda self, generator, requirements: "m-test")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _crashed_run(uri: str, tmp_path: Path) -> tuple[RunConfig, str, Path]:
    """A 3-epoch run that died after checkpointing epoch 2: (config, run id, checkpoint folder)."""
    config = RunConfig(variant="animals_baseline", dataset="horses", epochs=3, batch_size=32, max_images=64,
                       width=0.125, tracking_uri=uri, progress=False, xla="off", eval_every=0,
                       checkpoint_dir=str(tmp_path / "ck"))
    die_before_logging(config, epoch=2)
    [folder] = (tmp_path / "ck").iterdir()
    assert [p.name for p in checkpoints.list_checkpoints(folder)] == ["epoch-0001.npz", "epoch-0002.npz"]
    return config, folder.name, folder


def _rewrite(path: Path, drop: tuple[str, ...] = (), **meta_changes) -> None:
    """Write ``path`` again without the arrays ``drop`` and with its metadata changed."""
    import json

    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k not in drop}
    meta = {**json.loads(arrays["meta"].tobytes().decode()), **meta_changes}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _run_status(uri: str, run_id: str) -> str:
    return tracking.client(uri).get_run(run_id).info.status


def test_a_newest_checkpoint_without_fixed_noise_falls_back_to_the_previous_one(store_copy, tmp_path, cifar10_root):
    config, run_id, folder = _crashed_run(store_copy, tmp_path)
    _rewrite(folder / "epoch-0002.npz", drop=("extra/fixed_noise",))
    lines: list[str] = []
    result = train.run(config, resume=run_id, log=lines.append)
    assert any("epoch-0002.npz" in line and "'fixed_noise'" in line and "previous" in line for line in lines), lines
    assert (result.status, result.epochs_done) == ("FINISHED", 3)
    assert _run_status(store_copy, run_id) == "FINISHED"


def test_a_checkpoint_whose_name_and_metadata_disagree_is_refused(store_copy, tmp_path, cifar10_root):
    config, run_id, folder = _crashed_run(store_copy, tmp_path)
    _rewrite(folder / "epoch-0002.npz", epoch=3)  # it would skip epoch 3 and call the run finished
    lines: list[str] = []
    result = train.run(config, resume=run_id, log=lines.append)
    assert any("epoch-0002.npz" in line and "name says epoch 2 but its metadata says epoch 3" in line
               for line in lines), lines
    assert (result.status, result.epochs_done) == ("FINISHED", 3)
    steps = [m.step for m in tracking.client(store_copy).get_metric_history(run_id, "d_loss")]
    assert sorted(steps) == [1, 2, 3], "epochs 2 and 3 were trained, not skipped"


# --- damaged tracking stores -----------------------------------------------------------------
def _garbage_interior(store: Path) -> None:
    """Overwrite one table's root page (not the experiments table) with random bytes."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as c:
        page = c.execute("SELECT rootpage FROM sqlite_master WHERE name = 'logged_models'").fetchone()[0]
        size = c.execute("PRAGMA page_size").fetchone()[0]
    with open(store, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(os.urandom(size))


# name -> (make the store at path from a good one, words of the error; None: a new store is made)
STORES = {
    "garbage interior pages": (lambda good, p: (shutil.copy(good, p), _garbage_interior(p)), "is damaged"),
    "garbage header": (lambda good, p: p.write_bytes(b"garbage" + good.read_bytes()[7:]), "not an SQLite database"),
    "not a database at all": (lambda good, p: p.write_text("id,name\n1,x\n"), "not an SQLite database"),
    "cut in half": (lambda good, p: p.write_bytes(good.read_bytes()[: good.stat().st_size // 2]), "is damaged"),
    "a folder": (lambda good, p: p.mkdir(), "names a folder, not a database file"),
    "a link loop": (lambda good, p: p.symlink_to(p.name), "symbolic link loop"),
    "a broken link": (lambda good, p: p.symlink_to("nowhere.db"), "broken link"),
    "an empty file": (lambda good, p: p.write_bytes(b""), None),
}


@pytest.mark.parametrize("case", sorted(STORES))
def test_a_damaged_store_fails_at_once_and_is_left_as_it_was(case, empty_store, tmp_path, monkeypatch):
    make, words = STORES[case]
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "mlflow.db"
    make(empty_store, store)
    before = _digest(store) if store.is_file() else None
    uri = f"sqlite:///{store}"
    start = time.monotonic()
    if words is None:
        tracking.ensure_store(uri)  # an empty file is a new store
        assert tracking.client(uri).search_experiments()
        return
    with pytest.raises(TrackingError) as err:
        tracking.ensure_store(uri)
    assert time.monotonic() - start < 10, "no minutes of retries"
    assert words in str(err.value) and str(store) in str(err.value)
    assert "Traceback" not in str(err.value)
    if before is not None:
        assert _digest(store) == before, "a damaged store is never written to"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes whatever the mode")
def test_a_read_only_store_is_refused(empty_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "mlflow.db"
    shutil.copy(empty_store, store)
    store.chmod(0o444)
    with pytest.raises(TrackingError, match="not writable"):
        tracking.ensure_store(f"sqlite:///{store}")


def test_training_on_a_store_with_garbage_pages_stops_before_training(empty_store, tmp_path, monkeypatch,
                                                                      cifar10_root):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "mlflow.db"
    shutil.copy(empty_store, store)
    _garbage_interior(store)
    before = _digest(store)
    config = RunConfig(variant="animals_baseline", dataset="horses", epochs=1, max_images=64, batch_size=32,
                       width=0.125, tracking_uri=f"sqlite:///{store}", progress=False, xla="off", eval_every=0,
                       checkpoint_dir=str(tmp_path / "ck"))
    with pytest.raises(TrackingError, match="is damaged.*Restore it from a backup"):
        train.run(config, log=lambda _: None)
    assert _digest(store) == before and not list(tmp_path.rglob("*.npz"))


CREATE_AND_LOG = textwrap.dedent("""
    import sys, time
    from harness.store import tracking
    uri, start = sys.argv[1], float(sys.argv[2])
    import mlflow  # imported before the wait, so both processes reach the store together
    while time.time() < start:
        time.sleep(0.005)
    tracking.ensure_store(uri)
    logger = tracking.RunLogger.start(uri, "race")
    logger.log_metrics({"loss": 1.0}, step=1)
    logger.end("FINISHED")
""")


@pytest.mark.slow
def test_two_runs_creating_one_store_at_once_both_finish(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new.db'}"
    start = str(time.time() + 12)  # both have imported MLflow by then, even on a busy machine
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", CREATE_AND_LOG, uri, start], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    client = tracking.client(uri)
    runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
    assert (tmp_path / "new.db.lock").exists()


# --- an image bomb: a small PNG of 12000 x 12000 pixels --------------------------------------
def _flat_png(path: Path, width: int, height: int) -> None:
    """A valid RGBA PNG of one colour; flat rows compress to almost nothing."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(1), b"\0" + b"\x80" * (4 * width)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_an_image_over_the_pixel_budget_is_skipped_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    _flat_png(bomb, 12000, 12000)
    assert bomb.stat().st_size < 3_000_000 and 12000 * 12000 < Image.MAX_IMAGE_PIXELS * 2
    start = time.monotonic()
    image, reason = decode.decode_file(str(bomb), 32)
    assert image is None and reason == "too large: 12000x12000 px, over the 40-megapixel limit"
    assert time.monotonic() - start < 1.0


def test_the_budget_counts_a_jpeg_after_reduced_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(decode, "MAX_PIXELS", 5000)
    Image.new("RGB", (400, 400), (200, 30, 30)).save(tmp_path / "big.jpg", quality=90)  # drafts to 50x50
    _flat_png(tmp_path / "big.png", 80, 80)  # 6400 px: no reduced decoding for PNG
    image, reason = decode.decode_file(str(tmp_path / "big.jpg"), 16)
    assert reason == "" and image.shape == (16, 16, 3)
    folder = tmp_path / "set"
    folder.mkdir()
    shutil.copy(tmp_path / "big.png", folder / "big.png")
    for i in range(2):
        Image.new("RGB", (40, 40), (i, 0, 0)).save(folder / f"{i}.png")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    data = load_dataset(f"folder:{folder}")
    assert data.count == 2 and data.skipped == 1
    assert data.skipped_examples == (f"{folder.resolve() / 'big.png'} (too large: 80x80 px, over the "
                                     "0.005-megapixel limit)",)


# --- paths the system refuses: the message names the cause ------------------------------------
def _raised(action) -> OSError:
    try:
        action()
    except OSError as exc:
        return exc
    raise AssertionError("no OSError")


def test_os_errors_are_described_by_their_cause(tmp_path):
    missing = _raised(lambda: open("/proc/nope/x.png", "wb"))
    assert describe_os_error(missing) == ("cannot use /proc/nope/x.png: the folder /proc/nope does not exist; "
                                          "create it or choose another path.")

    long_name = tmp_path / ("d" * 20000) / "x.png"
    message = describe_os_error(_raised(lambda: open(long_name, "wb")))
    assert "the name is too long (longest part 20000 bytes; file systems allow 255 bytes per name)" in message
    assert len(message) < 300, "the 20,000-character name is shortened, not printed whole"

    (tmp_path / "loop").symlink_to("loop")
    message = describe_os_error(_raised(lambda: open(tmp_path / "loop" / "x.png", "wb")))
    assert message.startswith("cannot use ") and "x.png: it is, or passes through, a symbolic link loop" in message

    (tmp_path / "file").write_text("x")
    assert "is a file, not a folder" in describe_os_error(_raised(lambda: open(tmp_path / "file" / "x.png", "wb")))
    assert "is a folder; give a file name" in describe_os_error(_raised(lambda: open(tmp_path, "wb")))
    for code, words in [(errno.EACCES, "permission denied on /data/x.png; fix its permissions"),
                        (errno.EPERM, "permission denied on /data/x.png"),
                        (errno.ENOSPC, "the disk holding /data/x.png is full; free disk space"),
                        (errno.EDQUOT, "disk quota is used up"),
                        (errno.EROFS, "/data/x.png is on a read-only file system"),
                        (errno.EIO, "input/output error on /data/x.png")]:
        assert words in describe_os_error(OSError(code, os.strerror(code), "/data/x.png")), code
    assert describe_os_error(OSError(errno.ETIMEDOUT, "Connection timed out")) == "Connection timed out."
    for message in (describe_os_error(missing), describe_os_error(OSError(errno.ENOSPC, "x", "/a"))):
        assert "--resume" not in message, "the caller adds the resume hint where a run exists"


def test_every_os_error_description_is_one_line_naming_the_path():
    for code in sorted(errno.errorcode):
        message = describe_os_error(OSError(code, os.strerror(code), "/some/where.png"))
        assert "\n" not in message and "/some/where.png" in message and message.endswith("."), (code, message)
    assert isinstance(describe_os_error(OSError("bare")), str)
    assert issubclass(TrackingError, HarnessError)


def test_a_nan_after_resuming_from_a_damaged_checkpoint_names_the_checkpoint_kept(store_copy, tmp_path,
                                                                               cifar10_root, monkeypatch):
    from harness.errors import TrainingFailed
    from harness.train.callbacks import NonFiniteGuard

    config, run_id, folder = _crashed_run(store_copy, tmp_path)
    (folder / "epoch-0002.npz").write_bytes(b"damaged")  # the resume falls back to epoch 1

    def diverge(self, batch, logs=None):
        self.bad, self.value, self.step = "g_loss", float("nan"), batch + 1
        self.model.stop_training = True

    monkeypatch.setattr(NonFiniteGuard, "on_train_batch_end", diverge)
    with pytest.raises(TrainingFailed) as failed:
        train.run(config, resume=run_id, log=lambda *_: None)
    message = str(failed.value)
    assert "g_loss became nan at epoch 2" in message
    assert f"the last checkpoint, {folder / 'epoch-0001.npz'} (epoch 1), is kept" in message  # not "epoch 2"
    assert _run_status(store_copy, run_id) == "FAILED"


@pytest.mark.parametrize("odd", ["it's", 'say "hi"', "it's \"both\""])
def test_resume_finds_a_run_whose_dataset_name_has_quotes(store_copy, tmp_path, cifar10_root, odd):
    images = tmp_path / odd
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(images / f"{i}.png")
    config = RunConfig(variant="animals_baseline", dataset=f"folder:{images}", epochs=2, batch_size=16,
                       width=0.125, tracking_uri=store_copy, progress=False, xla="off", eval_every=0,
                       checkpoint_dir=str(tmp_path / "ck"))
    die_before_logging(config, epoch=2)
    run_id = train.find_resumable(config)  # the lookup filters on the tags holding the quotes
    assert tracking.client(store_copy).get_run(run_id).data.tags["dataset"] == f"folder:{images}"
    assert train.run(config, resume=run_id, log=lambda *_: None).status == "FINISHED"
