"""An SQLite tracking store as a file: checked for damage without writing, created once under a lock.

MLflow opens an SQLite store it is given, creating its schema when missing,
and retries a damaged one for minutes. The tracking adapter
(``harness.store.tracking.ensure_store``) calls these first, so a damaged store
is one clear error before training and two processes creating a new store
at once both succeed.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import urllib.parse
from pathlib import Path

from harness.errors import TrackingError, describe_os_error

try:
    import fcntl
except ImportError:  # Windows: no flock, so no schema lock (see schema_lock)
    fcntl = None

SQLITE_HEADER = b"SQLite format 3\x00"
LOCK_WAIT_S = 300.0  # creating MLflow's schema takes seconds; a holder this slow is stuck


def check_sqlite_file(path: Path, uri: str | None = None) -> None:
    """Refuse an SQLite store that is damaged, reading it only (it is never modified).

    A missing or empty file is a new store. Otherwise the header and every
    table's and index's pages are read (``PRAGMA quick_check``). Raises
    ``TrackingError`` naming the file and what to do.
    """
    name = uri or f"sqlite:///{path}"
    try:
        try:
            if path.stat().st_size == 0:
                return
        except FileNotFoundError:
            if not path.is_symlink():
                return
            raise  # a broken link: MLflow would retry opening it for minutes
        with open(path, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except OSError as exc:  # a link loop, a permission...
        raise TrackingError(f"tracking store {name!r}: {describe_os_error(exc)}") from None
    fix = (f"It was left as it is. Restore it from a backup, recover what is readable with the sqlite3 "
           f"tool (`sqlite3 {path} .recover | sqlite3 recovered.db`), or pass another --tracking-uri.")
    if header != SQLITE_HEADER:
        raise TrackingError(f"tracking store {name!r} is not an SQLite database (it starts with {header!r}); it "
                            "was left as it is. Pass another --tracking-uri, or move the file away if it is not "
                            "a store.")
    try:
        # mode=ro: a check must never write to the store it checks.
        connection = sqlite3.connect(f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro", uri=True,
                                     timeout=60)
        try:
            problems = [row[0] for row in connection.execute("PRAGMA quick_check").fetchall()]
        finally:
            connection.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise TrackingError(f"tracking store {name!r} stayed locked by another process for a minute; "
                                "wait for it, then run again.") from None
        raise TrackingError(f"tracking store {name!r} cannot be read ({exc}). {fix}") from None
    except sqlite3.DatabaseError as exc:
        raise TrackingError(f"tracking store {name!r} is damaged ({exc}). {fix}") from None
    if problems != ["ok"]:
        raise TrackingError(f"tracking store {name!r} is damaged ({problems[0][:200]}). {fix}")


def check_store_to_read(path: Path, uri: str | None = None) -> bool:
    """Check the SQLite tracking store ``path`` before a read-only command reads it, writing nothing.

    Returns False when there is nothing to read (no file, or an empty one):
    opening it with MLflow would write its schema into it. Raises
    ``TrackingError`` when the file is damaged or is an SQLite database that
    is no MLflow store.
    """
    name = uri or f"sqlite:///{path}"
    check_sqlite_file(path, uri)
    try:
        if not path.exists() or path.stat().st_size == 0:
            return False
        connection = sqlite3.connect(f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro", uri=True,
                                     timeout=60)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except (OSError, sqlite3.Error) as exc:
        raise TrackingError(f"tracking store {name!r} cannot be read ({exc}).") from None
    if not tables:
        return False  # an SQLite file nothing was written to yet
    if not {"experiments", "runs"} <= tables:
        raise TrackingError(f"tracking store {name!r} is an SQLite database but not an MLflow store (it has no "
                            "experiments or runs table); it was left as it is. Pass the --tracking-uri your runs "
                            "were logged to.")
    return True


def store_to_read(uri: str) -> bool:
    """``check_store_to_read`` for a tracking URI: False when an SQLite store has nothing to read
    yet (a server or another database is taken as it is). Writes nothing."""
    if not uri.startswith("sqlite:///"):
        return True
    return check_store_to_read(Path(uri[len("sqlite:///"):].split("?", 1)[0]), uri)


@contextlib.contextmanager
def schema_lock(path: Path, wait_s: float = LOCK_WAIT_S):
    """Hold the inter-process lock ``<database>.lock`` beside the SQLite file ``path``.

    MLflow creates a missing schema on first open, without a lock: two
    processes doing it at once collide ("table ... already exists"). Whoever
    holds this lock opens the store first; the others then find the schema
    made. Where ``flock`` does not exist (Windows) no lock is taken.
    """
    if fcntl is None:
        yield
        return
    lock_path = path.with_name(path.name + ".lock")
    try:
        handle = open(lock_path, "a")
    except OSError as exc:  # e.g. a folder of that name
        raise TrackingError(f"cannot take the store's lock: {describe_os_error(exc)}") from None
    with handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TrackingError(
                        f"another process has held {lock_path} for {wait_s:.0f} s while creating the "
                        "tracking store; stop it if it hangs, then run again."
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
