"""Real training processes: SIGKILL mid-epoch then --resume, SIGINT, and two runs
writing one SQLite store at once.

Three processes start together, so their TensorFlow imports overlap: the
SIGKILL victim and a plain run share one fresh store (created once, first);
the SIGINT victim has its own. A watcher thread per victim reads its progress
bar and sends the signal in the middle of epoch 2.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from run_metrics import each_metric_at, logged_epochs

from harness import cli
from harness.store import tracking
from harness.train import checkpoints

pytestmark = pytest.mark.slow

TINY = ["--variant", "animals_baseline", "--dataset", "horses", "--epochs", "2", "--width", "0.125",
        "--xla", "off", "--eval-every", "0"]
# 32 steps an epoch, so a signal sent at the first progress update of epoch 2 lands mid-epoch.
VICTIM = TINY + ["--max-images", "512", "--batch-size", "16", "--progress"]  # the bar shows on a pipe too
PLAIN = TINY + ["--max-images", "128", "--batch-size", "32", "--no-progress"]
MID_EPOCH_2 = re.compile(r"epoch 2/2:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")


class Process:
    """A ``python -m harness`` child; optionally sends ``signum`` once epoch 2 is under way."""

    def __init__(self, argv: list[str], cwd: Path, signum: int | None = None):
        self.signum, self.sent_at, self.err = signum, None, ""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "run", *argv], cwd=cwd, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore"},
            # A shell's background jobs ignore SIGINT; the child must see it as a user would.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.reader = threading.Thread(target=self._watch, daemon=True)
        self.reader.start()

    def _watch(self) -> None:
        fd = self.proc.stderr.fileno()
        while chunk := os.read(fd, 65536):
            self.err += chunk.decode(errors="replace")
            if self.signum is not None and self.sent_at is None:
                found = [(int(a), int(b)) for a, b in MID_EPOCH_2.findall(self.err[-4000:])]
                if found and 0 < found[-1][0] < found[-1][1]:
                    self.sent_at = found[-1]
                    self.proc.send_signal(self.signum)

    def wait(self, timeout: float = 240) -> tuple[int, str, str]:
        out = self.proc.stdout.read()
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code, out.decode(errors="replace"), self.err


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not (Path(os.environ["HARNESS_DATA_DIR"]) / "cifar-10-batches-py").is_dir():
        pytest.skip("CIFAR-10 not found under $HARNESS_DATA_DIR")
    root = tmp_path_factory.mktemp("procs")
    template = root / "empty.db"
    tracking.ensure_store(f"sqlite:///{template}")  # the schema, created once
    procs = {}
    for name in ("shared", "interrupt"):
        (root / name).mkdir()
        shutil.copy(template, root / name / "mlflow.db")
    for name, argv, signum, where in (("kill", VICTIM, signal.SIGKILL, "shared"),
                                      ("plain", PLAIN, None, "shared"),
                                      ("interrupt", VICTIM, signal.SIGINT, "interrupt")):
        uri = f"sqlite:///{root / where / 'mlflow.db'}"
        procs[name] = (Process(argv + ["--tracking-uri", uri], root / where, signum), root / where, uri)
    yield procs
    for process, _, _ in procs.values():
        if process.proc.poll() is None:
            process.proc.kill()


def _runs(uri: str, **tags: str) -> list:
    client = tracking.client(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return [r for r in runs if all(r.data.params.get(k) == v for k, v in tags.items())]


def test_sigkill_mid_epoch_then_resume_finishes_with_one_value_per_epoch(started, monkeypatch, capsys):
    process, folder, uri = started["kill"]
    code, out, err = process.wait()
    assert code == -signal.SIGKILL and process.sent_at is not None, err[-2000:]
    [run] = _runs(uri, max_images="512")
    run_id = run.info.run_id
    assert run.info.status == "RUNNING"  # nothing could mark it: this is what --resume looks for
    assert [p.name for p in checkpoints.list_checkpoints(folder / "checkpoints" / run_id)] == ["epoch-0001.npz"]
    assert logged_epochs(uri, run_id)["d_loss"] == [1]

    monkeypatch.chdir(folder)
    # --resume picks the run SIGKILL left RUNNING (the plain run is FINISHED, or
    # locked while its process still trains it).
    code = cli.main(["run", *VICTIM, "--tracking-uri", uri, "--no-progress", "--resume"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert f"resuming run {run_id} from" in printed.out and "(epoch 1)" in printed.out
    [run] = _runs(uri, max_images="512")
    assert (run.info.run_id, run.info.status) == (run_id, "FINISHED")
    assert logged_epochs(uri, run_id) == each_metric_at(1, 2)
    client = tracking.client(uri)
    assert [a.path for a in client.list_artifacts(run_id, "samples")] == [
        "samples/epoch_0001.png", "samples/epoch_0002.png"]
    assert tracking.generator_uri(uri, run_id).startswith("models:/")


def test_sigint_marks_the_run_killed_with_a_checkpoint(started):
    process, folder, uri = started["interrupt"]
    code, out, err = process.wait()
    assert process.sent_at is not None, err[-2000:]
    assert code == 130
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    [run] = _runs(uri)
    assert run.info.status == "KILLED"
    assert run.data.tags["failure_reason"] == "interrupted during epoch 2"
    ckpt_dir = folder / "checkpoints" / run.info.run_id
    [saved] = checkpoints.list_checkpoints(ckpt_dir)
    assert checkpoints.read_meta(saved)["epoch"] == 1  # epoch 2 restarts from here
    assert not [p for p in ckpt_dir.iterdir() if p.name.endswith(".tmp")]
    assert logged_epochs(uri, run.info.run_id)["d_loss"] == [1]


def test_two_runs_at_once_on_one_sqlite_store_lose_no_metrics(started):
    # The plain run and the SIGKILL victim trained at once on this store.
    started["kill"][0].wait()
    code, out, err = started["plain"][0].wait()
    assert code == 0, err[-3000:]
    uri = started["plain"][2]
    [plain], [victim] = _runs(uri, max_images="128"), _runs(uri, max_images="512")
    assert plain.info.status == "FINISHED"
    assert plain.info.experiment_id == victim.info.experiment_id  # created once, despite the race
    assert logged_epochs(uri, plain.info.run_id) == each_metric_at(1, 2)
    # The victim's epoch 1, whole; epoch 2 too where the first test has resumed it.
    assert logged_epochs(uri, victim.info.run_id) in (each_metric_at(1), each_metric_at(1, 2))
