"""Bad input through the real CLI, in subprocesses: one clear message, a non-zero
exit code, no traceback, and nothing trained."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

RUN = ["run", "--variant", "animals_baseline", "--dataset", "horses", "--max-images", "64",
       "--batch-size", "32", "--epochs", "1", "--width", "0.125", "--no-progress", "--eval-every", "0"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def _replace(argv: list[str], flag: str, value: str) -> list[str]:
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


# id -> (arguments, expected exit code, what the message must say)
CASES = {
    "unknown_variant": (_replace(RUN, "--variant", "bn_kernal4"), 2,
                        ["unknown token 'kernal4'", "kernel4", "harness variants"]),
    "unknown_dataset": (_replace(RUN, "--dataset", "horsies"), 2,
                        ["unknown dataset 'horsies'", "did you mean 'horses'", "folder:PATH"]),
    "unknown_command": (["trian"], 2, ["invalid choice: 'trian'", "--help"]),
    "unknown_flag": (RUN + ["--learning-rate", "0.1"], 2,
                     ["unrecognized arguments: --learning-rate 0.1", "run --help"]),
    "negative_lr": (RUN + ["--g-lr", "-0.0002"], 2, ["--g-lr", "-0.0002 must be in (0, 1]"]),
    "zero_epochs": (_replace(RUN, "--epochs", "0"), 2, ["--epochs 0 must be a positive whole number"]),
    "negative_seed": (RUN + ["--seed", "-1"], 2, ["--seed -1 must be in [0, 4294967296)"]),
    "long_experiment": (RUN + ["--experiment", "e" * 20000], 2,
                        ["--experiment 'eeee", "(20000 characters) must be 1 to 500 characters long"]),
    "vanishing_width": (RUN + ["--width", "1e-9"], 2, ["--width 1e-09", "rounds", "to no filters"]),
    "batch_larger_than_dataset": (_replace(RUN, "--batch-size", "128"), 2,
                                  ["has 64 usable images", "lower the batch size to at most 64"]),
    "unwritable_checkpoint_dir": (RUN + ["--checkpoint-dir", "a_file/ck"], 2,
                                  ["--checkpoint-dir 'a_file/ck' is not writable", "pass a folder"]),
    "unwritable_tracking_store": (RUN + ["--tracking-uri", "sqlite:///a_file/mlflow.db"], 2,
                                  ["'a_file' is a file, not a folder", "--tracking-uri"]),
    "tracking_server_unreachable": (RUN + ["--tracking-uri", "http://127.0.0.1:{port}"], 2,
                                    ["tracking server 'http://127.0.0.1:", "unreachable", "mlflow server"]),
    "resume_with_server_unreachable": (RUN + ["--resume", "--tracking-uri", "http://127.0.0.1:{port}"], 2,
                                       ["tracking server 'http://127.0.0.1:", "unreachable"]),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run every case at once (each is a fresh interpreter); collect what it printed.
    Without CIFAR-10 the cases read 64 generated images from a folder named horses instead
    (a subprocess cannot accept a stand-in's checksums); no message depends on the source."""
    dataset = "horses"
    if not (Path(os.environ["HARNESS_DATA_DIR"]) / "cifar-10-batches-py").is_dir():
        import numpy as np
        from PIL import Image

        folder = tmp_path_factory.mktemp("images") / "horses"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(64):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        dataset = f"folder:{folder}"
    port = str(_closed_port())
    started = {}
    for name, (argv, _, _) in CASES.items():
        cwd = tmp_path_factory.mktemp(name)
        (cwd / "a_file").write_text("not a folder")
        argv = [dataset if a == "horses" else a.replace("{port}", port) for a in argv]
        started[name] = (cwd, time.perf_counter(), subprocess.Popen(
            [sys.executable, "-m", "harness", *argv], cwd=cwd, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONWARNINGS": "ignore"}))
    results = {}
    for name, (cwd, t0, proc) in started.items():
        out, err = proc.communicate(timeout=120)
        results[name] = (proc.returncode, out, err, time.perf_counter() - t0, cwd)
    return results


@pytest.mark.parametrize("name", CASES)
def test_bad_input_gets_one_clear_message(outcomes: dict, name: str) -> None:
    code, out, err, _, cwd = outcomes[name]
    _, expected_code, phrases = CASES[name]
    assert code == expected_code, err
    assert "Traceback" not in err + out
    for phrase in phrases:
        assert phrase in err, f"{phrase!r} not in {err!r}"
    # Nothing was trained or logged: no run, no checkpoint, no artifacts.
    assert not (cwd / "mlruns").exists()
    assert not list(cwd.glob("**/*.npz"))


@pytest.mark.parametrize("name", ["tracking_server_unreachable", "resume_with_server_unreachable"])
def test_unreachable_server_fails_before_any_training(outcomes: dict, name: str) -> None:
    code, out, err, seconds, cwd = outcomes[name]
    assert out == ""  # no "run <id>: ..." line: no run was started, nothing trained
    assert seconds < 60  # a refused connection answers at once (no retries, no model built)
