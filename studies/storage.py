"""Where a study lives: an SQLite file, a journal file, or a PostgreSQL database.

``--storage`` spellings:

    (none)                     ./optuna.db (SQLite) for one worker, ./optuna.journal for several
    sqlite:///path.db          an SQLite file (one worker process at a time)
    journal:path | path.journal  a journal file (several workers on one host)
    postgresql://user@host/db  a database server (workers on many machines)

Database storages record a heartbeat per running trial; a trial whose worker
stopped beating (killed, pre-empted, machine lost) is marked FAIL by the next
worker and re-queued once (``RetryHeartbeatStaleTrialCallback``). The journal
file has no heartbeats; its orphans are failed by ``fail_orphans``.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

from harness.errors import ConfigError
from harness.store.schema import parse_storage
from harness.store.urls import redact

# Optuna is imported inside functions: the CLI imports this module (through
# studies.settings), and `--help`, `variants` and `datasets` must not load it.

DEFAULT_SQLITE = "sqlite:///optuna.db"
DEFAULT_JOURNAL = "journal:optuna.journal"
HEARTBEAT_S = 30  # a running trial writes a heartbeat this often
GRACE_S = 120  # and is stale (its worker gone) after this long without one
MAX_RETRY = 1


def default_url(workers: int) -> str:
    """The embedded storage for ``workers`` processes on this host."""
    return DEFAULT_SQLITE if workers <= 1 else DEFAULT_JOURNAL


def normalise(url: str | None, workers: int = 1) -> str:
    """The canonical spelling of ``url`` (``None``: the default for ``workers``).

    ``postgresql://`` becomes ``postgresql+psycopg://`` (psycopg 3 is the installed
    driver); ``x.journal`` becomes ``journal:x``. Raises ConfigError for a storage
    that cannot serve ``workers`` processes or an unknown scheme.
    """
    storage = parse_storage(url or default_url(workers))
    url = storage.url
    if storage.kind == "sqlite" and workers > 1:
        raise ConfigError(
            f"--storage {redact(url)!r} is SQLite, which several worker processes cannot write at once; "
            "use a journal file (--storage journal:optuna.journal, the default with --workers) "
            "or --storage postgresql://user@host/db.")
    if storage.kind == "unknown":
        raise ConfigError(
            f"--storage {redact(url)!r}: unknown kind; use sqlite:///optuna.db, journal:optuna.journal "
            "or postgresql://user@host/db.")
    return url


def open_storage(url: str, *, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S,
                 max_retry: int | None = MAX_RETRY):
    """The optuna storage object for a normalised ``url``. Raises ConfigError when the
    storage cannot be opened (a wrong path, a database that is down).

    Database storages expect a heartbeat every ``heartbeat_s`` from each running
    trial and, after ``grace_s`` without one, fail it and enqueue a copy (at
    most ``max_retry`` times per trial)."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if url.startswith("journal:"):
        path = Path(url[len("journal:"):]).expanduser()
        if not path.parent.is_dir():
            raise ConfigError(f"--storage {url!r}: folder {str(path.parent)!r} does not exist.")
        # The open() lock works on every file system, unlike the symlink lock.
        return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    if url.startswith("sqlite:///"):
        folder = Path(url[len("sqlite:///"):]).expanduser().parent
        if not folder.is_dir():
            raise ConfigError(f"--storage {url!r}: folder {str(folder)!r} does not exist.")
    with warnings.catch_warnings():  # heartbeats are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return RDBStorage(
                url, heartbeat_interval=heartbeat_s, grace_period=grace_s,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                engine_kwargs={"pool_pre_ping": True} if url.startswith("postgresql") else None)
        except Exception as exc:  # sqlalchemy's errors name the driver, not the flag
            raise ConfigError(f"--storage {redact(url)!r} cannot be opened: {_first_line(exc)}. "
                              "Check the address and that the database exists.") from None


def dashboard_command(url: str) -> str:
    """The shell command that opens ``optuna-dashboard`` on the storage at ``url``."""
    target = url[len("journal:"):] if url.startswith("journal:") else url
    return f"optuna-dashboard {target}"


def worker_id() -> str:
    """This process as ``host:pid`` (recorded on each trial it runs)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def fail_orphans(study) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker was a process on this host that is gone.

    Returns their numbers. Database storages also catch these by heartbeat; the
    journal file relies on this alone.
    """
    from optuna.trial import TrialState

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not orphaned(trial):
            continue
        study._storage.set_trial_user_attr(trial._trial_id, "fail_reason",
                                           f"worker {trial.user_attrs['worker']} exited during the trial")
        if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            failed.append(trial.number)
    return failed


def orphaned(trial) -> bool:
    """Whether ``trial``'s worker (its ``worker`` attr, ``host:pid``) was a process on this
    host that no longer runs."""
    worker = str(trial.user_attrs.get("worker", ""))
    worker_host, _, pid = worker.rpartition(":")
    return worker_host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (exited, not yet reaped) still answers kill(0).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
