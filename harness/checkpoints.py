"""Checkpoints: both networks, both optimisers, the noise state and the run config.

One ``.npz`` file per epoch (``epoch-0007.npz``), written to a temporary name
and renamed into place, so a crash or a full disk never leaves a half-written
checkpoint under a final name. Files are read with ``allow_pickle=False``:
loading a checkpoint never runs code.

A run's folder also holds ``.lock``, held (``flock``) by the process training
that run: the kernel releases it when the process dies, even by SIGKILL, so a
held lock means "still training" and an unheld one "safe to resume".
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError

NAME = re.compile(r"^epoch-(\d{4,})\.npz$")


def _groups(gan) -> dict[str, list]:
    """The variables a checkpoint holds, grouped; order is fixed by the architecture."""
    return {
        "generator": gan.generator.weights,
        "discriminator": gan.discriminator.weights,
        "g_optimizer": gan.g_optimizer.variables,
        "d_optimizer": gan.d_optimizer.variables,
        # The noise generator and every other (e.g. dropout's), in the model's own order.
        "seed_generator": [v for v in gan.variables if v.path.endswith("seed_generator_state")],
    }


def save(folder: str | Path, epoch: int, gan, meta: dict[str, Any],
         arrays: dict[str, np.ndarray] | None = None, keep: int = 2) -> Path:
    """Write the checkpoint after ``epoch`` (1-based) and prune to the newest ``keep``.

    ``meta`` (JSON-serialisable: the run config, run id...) and ``arrays``
    (e.g. the fixed sample noise) are stored alongside the variables.
    Returns the checkpoint's path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        f"{group}/{i}": np.asarray(v.numpy() if hasattr(v, "numpy") else v)
        for group, variables in _groups(gan).items()
        for i, v in enumerate(variables)
    }
    state.update({f"extra/{k}": np.asarray(v) for k, v in (arrays or {}).items()})
    state["meta"] = np.frombuffer(json.dumps({**meta, "epoch": epoch}).encode(), dtype=np.uint8)
    final = folder / f"epoch-{epoch:04d}.npz"
    tmp = folder / f".epoch-{epoch:04d}.npz.tmp"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **state)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        what = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise HarnessError(
            f"could not write checkpoint {final} ({what}); the previous checkpoint is kept. Free "
            "disk space or pass another --checkpoint-dir, then continue with --resume."
        ) from None
    except BaseException:  # e.g. Ctrl-C mid-write: never leave a partial file behind
        tmp.unlink(missing_ok=True)
        raise
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return final


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoint files in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if NAME.match(p.name)]
    return sorted(found, key=lambda p: int(NAME.match(p.name).group(1)))


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of one checkpoint (raises on a corrupt file)."""
    with np.load(path, allow_pickle=False) as data:
        return json.loads(bytes(data["meta"]).decode())


def restore(path: str | Path, gan) -> dict[str, Any]:
    """Load the checkpoint at ``path`` into ``gan`` (built and compiled); return its meta.

    Raises ``ValueError``/``OSError``-derived errors for corrupt or mismatched
    files; ``latest_valid`` turns those into a fallback.
    """
    with np.load(path, allow_pickle=False) as data:
        groups = _groups(gan)
        expected = sum(len(v) for v in groups.values())
        found = sum(1 for k in data.files if k != "meta" and not k.startswith("extra/"))
        if found != expected:
            raise ValueError(f"{path} holds {found} arrays, the model has {expected}")
        for group, variables in groups.items():
            for i, variable in enumerate(variables):
                value = data[f"{group}/{i}"]
                if tuple(value.shape) != tuple(variable.shape):
                    raise ValueError(f"{path}: {group}/{i} has shape {value.shape}, expected {variable.shape}")
                variable.assign(value)
        meta = json.loads(bytes(data["meta"]).decode())
        meta["arrays"] = {k[len("extra/"):]: data[k] for k in data.files if k.startswith("extra/")}
        return meta


def latest_valid(folder: str | Path, gan, warn=print) -> dict[str, Any] | None:
    """Restore the newest checkpoint that loads; say which ones were skipped and why."""
    for path in reversed(list_checkpoints(folder)):
        try:
            meta = restore(path, gan)
        except Exception as exc:  # a truncated zip raises several different types
            warn(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); trying the previous one")
            continue
        meta["path"] = str(path)
        return meta
    return None


# --- one trainer per run ----------------------------------------------------------------
LOCK = ".lock"


class RunBusy(HarnessError):
    """Another live process is training the run."""


def lock(folder: str | Path):
    """Hold ``folder``'s lock for this process; return the open file to ``unlock`` later.

    Raises ``RunBusy`` when another live process holds it. Where ``flock``
    does not exist (Windows) no lock is taken and None is returned.
    """
    try:
        import fcntl
    except ImportError:
        return None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise RunBusy(
            f"run folder {folder} is in use by {owner}, which is still training it; wait for it to "
            "end (or stop it) before resuming."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle


def unlock(handle) -> None:
    """Release a lock taken by ``lock`` (None is ignored)."""
    if handle is not None:
        handle.close()  # closing the file releases the flock


def is_locked(folder: str | Path) -> bool:
    """Whether a live process holds ``folder``'s lock."""
    if not (Path(folder) / LOCK).exists():
        return False
    try:
        unlock(lock(folder))
    except RunBusy:
        return True
    return False
