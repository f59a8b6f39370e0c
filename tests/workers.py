"""Campaign worker processes for the multi-worker tests: start one, kill one mid-cell."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def start_worker(path: Path, uri: str, storage: str, folder: Path, log: Path) -> subprocess.Popen:
    """``python -m harness campaign PATH`` on a shared queue, output to ``log``, a 2 s heartbeat."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "campaign", str(path), "--storage", storage, "--heartbeat", "2",
         "--tracking-uri", uri, "--checkpoint-dir", str(folder / "ck")],
        cwd=folder, stdout=open(log, "w"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def second_finishes_after_first_is_killed(path: Path, uri: str, storage: str, folder: Path, started: str,
                                          wait_s: float, finish_s: float) -> None:
    """Start a worker; once its log shows ``started`` (a checkpointed epoch, mid-cell), start a
    second and SIGKILL the first; the second must finish the campaign (exit 0) within ``finish_s``."""
    first = start_worker(path, uri, storage, folder, folder / "first.log")
    deadline = time.time() + wait_s
    while started not in (folder / "first.log").read_text():
        assert time.time() < deadline and first.poll() is None, (folder / "first.log").read_text()[-3000:]
        time.sleep(0.2)
    second = start_worker(path, uri, storage, folder, folder / "second.log")
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert second.wait(timeout=finish_s) == 0, (folder / "second.log").read_text()[-3000:]
