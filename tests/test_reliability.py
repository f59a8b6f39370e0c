"""Resume and faults in-process: disk full, a crash between two writes, a corrupt
checkpoint, SIGTERM, a run another process holds, a changed configuration."""

from __future__ import annotations

import errno
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from run_metrics import die_before_logging, each_metric_at, logged_epochs

from harness.config import RunConfig
from harness.errors import ConfigError, HarnessError
from harness.train import checkpoints
from harness.train import run as train


@pytest.fixture
def tracking_uri(store_uri: str) -> str:
    """This module's runs start from a store that has its schema (creating one takes seconds)."""
    return store_uri


@pytest.fixture(autouse=True)
def _no_model_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    # Saving the generator as an MLflow model takes seconds and is not what these
    # tests check; the subprocess tests (test_reliability_kill.py) log it for real.
    from harness.store import tracking

    monkeypatch.setattr(tracking.RunLogger, "log_generator", lambda self, generator, requirements: "m-test")


def _config(tracking_uri: str, tmp_path: Path, **changes) -> RunConfig:
    base = dict(variant="animals_baseline", dataset="horses", epochs=2, batch_size=32, max_images=128,
                width=0.125, tracking_uri=tracking_uri, progress=False, xla="off", eval_every=0,
                checkpoint_dir=str(tmp_path / "ck"))
    return RunConfig(**{**base, **changes})


def _status(uri: str, run_id: str) -> str:
    from harness.store import tracking

    return tracking.client(uri).get_run(run_id).info.status


def _only_run(uri: str) -> str:
    from harness.store import tracking

    client = tracking.client(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    return runs[0].info.run_id


def test_disk_full_keeps_the_previous_checkpoint_and_the_run_resumes(tracking_uri, tmp_path, monkeypatch, cifar10_root):
    real_savez, calls = np.savez, []

    def savez(file, **arrays):
        calls.append(1)
        if len(calls) == 2:  # the epoch-2 checkpoint
            file.write(b"PK\x03\x04 half a zip")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(file, **arrays)

    monkeypatch.setattr(np, "savez", savez)
    config = _config(tracking_uri, tmp_path)
    with pytest.raises(HarnessError, match="disk is full.*previous checkpoint is kept"):
        train.run(config, log=lambda _: None)
    run_id = _only_run(tracking_uri)
    folder = tmp_path / "ck" / run_id
    assert [p.name for p in checkpoints.list_checkpoints(folder)] == ["epoch-0001.npz"]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert checkpoints.read_meta(folder / "epoch-0001.npz")["epoch"] == 1
    assert _status(tracking_uri, run_id) == "FAILED"
    # The failed epoch was never logged: the checkpoint is written before the metrics.
    assert logged_epochs(tracking_uri, run_id)["d_loss"] == [1]

    monkeypatch.setattr(np, "savez", real_savez)
    with pytest.raises(ConfigError, match=r"seed: was 0, now 1.*batch_size: was 32, now 16|batch_size.*seed"):
        train.run(_config(tracking_uri, tmp_path, seed=1, batch_size=16), resume=run_id, log=lambda _: None)
    assert train.find_resumable(config) == run_id
    result = train.run(config, resume=run_id, log=lambda _: None)
    assert (result.status, result.epochs_done) == ("FINISHED", 2)
    assert _status(tracking_uri, run_id) == "FINISHED"
    assert logged_epochs(tracking_uri, run_id) == each_metric_at(1, 2)


def test_crash_between_checkpoint_and_metrics_logs_the_epoch_once(tracking_uri, tmp_path, cifar10_root):
    from harness.store import tracking

    config = _config(tracking_uri, tmp_path)
    die_before_logging(config, epoch=2)
    run_id = _only_run(tracking_uri)
    saved = checkpoints.read_meta(tmp_path / "ck" / run_id / "epoch-0002.npz")
    assert logged_epochs(tracking_uri, run_id)["d_loss"] == [1]

    lines: list[str] = []
    result = train.run(config, resume=run_id, log=lines.append)
    assert (result.status, result.epochs_done) == ("FINISHED", 2)
    assert any("epoch 2 was checkpointed but not logged" in line for line in lines)
    assert logged_epochs(tracking_uri, run_id) == each_metric_at(1, 2)
    history = tracking.client(tracking_uri).get_metric_history(run_id, "g_loss")
    assert [m.value for m in history if m.step == 2] == [pytest.approx(saved["metrics"]["g_loss"])]
    artifacts = [a.path for a in tracking.client(tracking_uri).list_artifacts(run_id, "samples")]
    assert artifacts == ["samples/epoch_0001.png", "samples/epoch_0002.png"]
    with pytest.raises(ConfigError, match="already FINISHED 2 epochs; pass --epochs above 2"):
        train.run(config, resume=run_id, log=lambda _: None)


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tracking_uri, tmp_path, cifar10_root):
    config = _config(tracking_uri, tmp_path, clean_checkpoints=False)  # keep them after FINISHED
    first = train.run(config, log=lambda _: None)
    newest = Path(first.checkpoint)
    assert newest.name == "epoch-0002.npz"
    with np.load(newest) as data:
        trained = {k: data[k] for k in data.files if k.startswith("generator/")}
    with open(newest, "r+b") as f:  # a write cut short
        f.truncate(newest.stat().st_size // 3)

    lines: list[str] = []
    result = train.run(config, resume=first.run_id, log=lines.append)
    assert any(str(newest) in line and "unreadable" in line and "previous" in line for line in lines)
    assert any("epoch-0001.npz (epoch 1)" in line for line in lines)
    assert (result.status, result.epochs_done) == ("FINISHED", 2)
    # Epoch 2 was retrained but its first metrics stay the only ones.
    assert any("epoch 2 was logged before its checkpoint was lost" in line for line in lines)
    assert logged_epochs(tracking_uri, first.run_id) == each_metric_at(1, 2)
    # Nothing is lost: the weights, optimiser, noise and shuffle state of epoch 1 retrain
    # epoch 2 into the generator that the lost checkpoint held.
    with np.load(result.checkpoint) as data:
        for key, value in trained.items():
            np.testing.assert_allclose(data[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_sigterm_mid_epoch_ends_killed_keeping_the_last_epochs_checkpoint(tracking_uri, tmp_path, monkeypatch,
                                                                          cifar10_root):
    from harness.train.callbacks import NonFiniteGuard

    config = _config(tracking_uri, tmp_path)
    seen: dict[str, bytes] = {}

    def after_epoch(epoch, metrics):
        [path] = (tmp_path / "ck").glob("*/epoch-0001.npz")
        seen["epoch 1"] = path.read_bytes()

    real = NonFiniteGuard.on_train_batch_end

    def on_batch_end(self, batch, logs=None):
        real(self, batch, logs)
        if "epoch 1" in seen and batch == 1:  # a pre-emption, mid-way through epoch 2
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(NonFiniteGuard, "on_train_batch_end", on_batch_end)
    with pytest.raises(KeyboardInterrupt):
        train.run(config, on_epoch=after_epoch, log=lambda _: None)
    run_id = _only_run(tracking_uri)
    from harness.store import tracking

    run = tracking.client(tracking_uri).get_run(run_id)
    assert (run.info.status, run.data.tags["failure_reason"]) == ("KILLED", "interrupted during epoch 2")
    folder = tmp_path / "ck" / run_id
    # The clean end-of-epoch-1 checkpoint is kept as it was, not overwritten mid-epoch.
    assert checkpoints.list_checkpoints(folder) == [folder / "epoch-0001.npz"]
    assert (folder / "epoch-0001.npz").read_bytes() == seen["epoch 1"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored

    # While another process trains the run, --resume leaves it alone.
    held = checkpoints.lock(folder)
    try:
        with pytest.raises(ConfigError, match="no unfinished run"):
            train.find_resumable(config)
        with pytest.raises(checkpoints.RunBusy, match=f"pid {os.getpid()}"):
            train.run(config, resume=run_id, log=lambda _: None)
    finally:
        checkpoints.unlock(held)
    assert train.find_resumable(config) == run_id

    # A checkpoint whose run is not in this store (e.g. another --tracking-uri).
    stray = tmp_path / "ck" / ("0" * 32)
    stray.mkdir()
    shutil.copy(checkpoints.list_checkpoints(folder)[-1], stray)
    with pytest.raises(ConfigError, match="no such run in"):
        train.run(config, resume=stray.name, log=lambda _: None)
