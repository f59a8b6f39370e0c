"""What a user sees: one line per epoch and no carriage returns in a log, no TensorFlow noise,
a closed pipe ends quietly, and no password in anything logged."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from harness.config import RunConfig
from harness.data.dataset import Dataset
from harness.train import run as train
from studies.settings import StudySettings
from variants import resolve


def _env() -> dict[str, str]:
    # The user's environment: no log level of their own, output not a terminal.
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


@pytest.mark.parametrize("command", ["datasets", "variants --json", "variants --all"])
def test_a_closed_pipe_ends_quietly(command):
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m harness {command} | head -1"],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(done.stdout.splitlines()) == 1


def test_a_run_in_a_log_file_prints_one_line_per_epoch_without_noise(tmp_path, data_root):
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--variant", "animals_baseline", "--dataset", "horses",
         "--max-images", "64", "--batch-size", "32", "--epochs", "2", "--width", "0.125", "--xla", "off",
         "--eval-every", "0", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", "--checkpoint-dir", str(tmp_path / "ck")],
        cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "\r" not in output  # no progress bar outside a terminal
    epochs = [line for line in done.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all("d_loss" in line and "real_acc" in line and "img/s" in line and "ETA" in line for line in epochs)
    for noise in ("oneDNN", "cuInit", "cuda", "absl", "remapper", "WARNING"):
        assert noise not in output, noise


def test_no_url_with_a_password_is_logged():
    secret = "http://ana:s3cret@mlflow.lab:5000"
    config = RunConfig(variant="animals_baseline", dataset="horses", tracking_uri=secret).resolved()
    images = np.zeros((4, 32, 32, 3), np.uint8)
    params = train._params(config, resolve("animals_baseline"), Dataset("horses", "cifar10", images, "/d", "f"))
    assert not [k for k, v in params.items() if "s3cret" in str(v)]
    study = StudySettings(run=config.replace(eval_every=5), trials=1,
                          storage="postgresql://ana:s3cret@db/optuna")
    assert "s3cret" not in str(study.base_config().tags)
    assert "ana:***@db" in study.base_config().tags["optuna.storage"]
