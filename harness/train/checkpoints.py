"""Checkpoints: both networks, both optimisers, the noise state and the run config.

One ``.npz`` file per epoch (``epoch-0007.npz``), written to a temporary name
and renamed into place, so a crash or a full disk never leaves a half-written
checkpoint under a final name. Files are read with ``allow_pickle=False``:
loading a checkpoint never runs code. Reading checks everything a resume
relies on before assigning anything (the epoch in the name and in the
metadata, every array's name, shape, dtype and finiteness, the arrays and
metadata the trainer needs) and refuses a file that fails with
``CheckpointError``; ``latest_valid`` then falls back to the previous one.

A run's folder also holds ``.lock``, held (``flock``) by the process training
that run: the kernel releases it when the process dies, even by SIGKILL, so a
held lock means "still training" and an unheld one "safe to resume".
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError

try:
    import fcntl
except ImportError:  # Windows: no flock, so no lock (see lock)
    fcntl = None

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


# --- reading: every check a resume relies on, before anything is assigned -------------
# What resuming a run reads besides the variables (train.py's side of the contract).
RESUME_ARRAYS = ("fixed_noise",)
RESUME_META = ("config",)
# "precision": what the networks trained in (float32 when absent: checkpoints from before it was recorded).
META_TYPES: dict[str, tuple[type, ...]] = {"config": (dict,), "metrics": (dict, type(None)), "run_id": (str,),
                                           "precision": (str,)}
MAX_META_BYTES = 1 << 20  # the run config and one epoch's metrics take a few kB
MAX_EXTRA_BYTES = 64 << 20  # e.g. the fixed sample noise: 64 x latent_dim floats
_HEADER_BYTES = 4096  # an .npy header is at most a few hundred bytes


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from: incomplete or inconsistent."""


class CheckpointUnreadable(CheckpointError):
    """A checkpoint that is not a readable archive at all (e.g. cut short)."""


def _open(path: Path):
    """``path`` opened as an .npz archive, refusing what is not one before numpy parses it."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):  # a FIFO would block the reader forever
        raise CheckpointUnreadable("not a regular file")
    if not zipfile.is_zipfile(path):
        raise CheckpointUnreadable("not a complete .npz archive (cut short, or not a checkpoint)")
    return np.load(path, allow_pickle=False)


def _member(data, key: str, limit: int) -> np.ndarray:
    """The array ``key`` of an open archive, refusing oversized or pickled members before reading."""
    try:
        size = data.zip.getinfo(f"{key}.npy").file_size
    except KeyError:
        raise CheckpointError(f"it has no {key!r} array") from None
    if size > limit:
        raise CheckpointError(f"{key} holds {size} bytes, more than the {limit} it can hold")
    try:
        return data[key]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise CheckpointError(f"{key} is a pickled object array, refused: loading it could run code") from None
        raise


def _meta(path: Path, data, required_meta: Iterable[str]) -> dict[str, Any]:
    """The checked metadata of an open checkpoint: JSON, an epoch that matches the file name."""
    raw = _member(data, "meta", MAX_META_BYTES)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"its metadata is a {raw.dtype} array of shape {raw.shape}, not JSON bytes")
    try:
        meta = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError("its metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise CheckpointError("its metadata is not a JSON object")
    epoch = meta.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise CheckpointError(f"its metadata has no valid epoch (found {epoch!r})")
    named = NAME.match(Path(path).name)
    if named and int(named.group(1)) != epoch:
        raise CheckpointError(f"its name says epoch {int(named.group(1))} but its metadata says epoch {epoch}")
    for key in required_meta:
        if key not in meta:
            raise CheckpointError(f"its metadata lacks {key!r}")
    for key, types in META_TYPES.items():
        if key in meta and not isinstance(meta[key], types):
            raise CheckpointError(f"its metadata's {key!r} is a {type(meta[key]).__name__}")
    return meta


def read_meta(path: str | Path, required_meta: Iterable[str] = RESUME_META) -> dict[str, Any]:
    """The metadata of one checkpoint, checked: an epoch matching the file name, and the
    keys ``required_meta`` present. Raises ``CheckpointError`` (or ``OSError``) naming what is wrong."""
    with _open(Path(path)) as data:
        return _meta(Path(path), data, required_meta)


def restore(path: str | Path, gan, required: Iterable[str] = (), required_meta: Iterable[str] = (),
            run_id: str | None = None) -> dict[str, Any]:
    """Load the checkpoint at ``path`` into ``gan`` (built and compiled); return its meta.

    ``meta["arrays"]`` holds the extra arrays. Each name in ``required`` must be
    among them, each key in ``required_meta`` in the metadata, and ``run_id``
    (when given) must be the run the metadata names. Everything is read and
    checked (names, shapes, dtypes, finite values, metadata) before any
    variable is assigned, so a refused file leaves ``gan`` as it was. Raises
    ``CheckpointError`` for a damaged or inconsistent file (``OSError`` and zip
    errors for unreadable ones); ``latest_valid`` turns those into a fallback.
    """
    path = Path(path)
    with _open(path) as data:
        meta = _meta(path, data, required_meta)
        if run_id is not None and meta.get("run_id") != run_id:
            raise CheckpointError(f"it belongs to run {meta.get('run_id')!r}, not {run_id}")
        expected = {f"{group}/{i}": v for group, variables in _groups(gan).items() for i, v in enumerate(variables)}
        found = {k for k in data.files if k != "meta" and not k.startswith("extra/")}
        if found != set(expected):
            missing, unknown = set(expected) - found, found - set(expected)
            what = ([f"lacks {_some(missing)}"] if missing else []) + (
                [f"holds {_some(unknown)}, which the model lacks"] if unknown else [])
            raise CheckpointError(f"it does not match the model: it {'; it '.join(what)}")
        values = {}
        for key, variable in expected.items():
            dtype = np.dtype(variable.dtype)
            shape = tuple(variable.shape)
            # Room for any numeric dtype, so a wrong one is named as such below; no more,
            # so a member claiming gigabytes is refused before it is read.
            value = _member(data, key, int(np.prod(shape, dtype=np.int64)) * 16 + _HEADER_BYTES)
            if value.shape != shape:
                raise CheckpointError(f"{key} has shape {value.shape}, the model's is {shape}")
            if value.dtype != dtype:
                raise CheckpointError(f"{key} is {value.dtype}, the model's is {dtype}")
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise CheckpointError(f"{key} holds NaN or inf")
            values[key] = value
        arrays = {k[len("extra/"):]: _member(data, k, MAX_EXTRA_BYTES) for k in data.files if k.startswith("extra/")}
        for name in required:
            if name not in arrays:
                raise CheckpointError(f"it lacks the {name!r} array a resume needs")
        for name, value in arrays.items():
            if value.dtype.kind not in "biuf" or (value.dtype.kind == "f" and not np.isfinite(value).all()):
                raise CheckpointError(f"extra/{name} is not an array of finite numbers")
    for key, variable in expected.items():
        variable.assign(values[key])
    meta["arrays"] = arrays
    return meta


def _some(names: set[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed[:3]) + (f" and {len(listed) - 3} more" if len(listed) > 3 else "")


def latest_valid(folder: str | Path, gan, warn=print, *, required: Iterable[str] = RESUME_ARRAYS,
                 required_meta: Iterable[str] = RESUME_META, run_id: str | None = None) -> dict[str, Any] | None:
    """Restore the newest checkpoint in ``folder`` that loads and holds what a resume needs.

    ``required``/``required_meta``: the extra arrays and metadata keys each
    checkpoint must hold (by default what ``train`` reads); ``run_id``, when
    given, must be the run its metadata names. Each file skipped is named
    through ``warn`` with the reason. Returns the meta (with ``arrays`` and
    ``path``) of the one restored, or None when none qualifies.
    """
    required, required_meta = tuple(required), tuple(required_meta)
    for path in reversed(list_checkpoints(folder)):
        try:
            meta = restore(path, gan, required=required, required_meta=required_meta, run_id=run_id)
        except CheckpointUnreadable as exc:
            warn(f"checkpoint {path} is unreadable ({exc}); trying the previous one")
            continue
        except CheckpointError as exc:
            warn(f"checkpoint {path} is refused: {exc}; trying the previous one")
            continue
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
    if fcntl is None:
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
