"""Read what Optuna stored: one ``StudyRecord`` per study, with its trials' outcome.

Reads any Optuna storage URL (``sqlite:///optuna.db``, ``postgresql://...``)
or a journal file path (``*.journal``, ``journal:PATH``). Nothing is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import TrackingError
from harness.store.schema import parse_storage

# Files the study command leaves in the working directory, in the order they are tried.
DEFAULT_FILES = ("optuna.db", "optuna.journal", "studies.journal")


@dataclass
class StudyRecord:
    """One study: which class and variant it tuned, how its trials ended, what was best."""

    name: str
    dataset: str | None
    variant: str | None
    direction: str  # "minimize" or "maximize"
    objective: str  # e.g. "fid"
    complete: int
    pruned: int
    failed: int
    running: int
    best_value: float | None
    best_trial: int | None
    best_params: dict[str, Any] = field(default_factory=dict)
    # (number of trials so far, best objective so far) after each trial, by trial number.
    curve: list[tuple[int, float | None]] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


def default_storage(folder: str | Path = ".") -> str | None:
    """The storage the study command would have written in ``folder``, if a file is there."""
    for name in DEFAULT_FILES:
        path = Path(folder) / name
        if path.is_file():
            return f"sqlite:///{path}" if name.endswith(".db") else f"journal:{path}"
    return None


def open_storage(url: str):
    """An Optuna storage for ``url``; a missing file is a ``TrackingError`` saying what to pass."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = parse_storage(url, journal_suffixes=(".journal", ".log"))
    if storage.kind == "journal":
        path = storage.path
        if not path.is_file():
            raise TrackingError(f"study storage {url!r}: no such journal file {str(path)!r}; pass "
                                "the --storage your studies used.")
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(path)))
    url = storage.url  # postgresql:// is read with psycopg 3, the installed driver
    if storage.kind == "sqlite" and not storage.path.is_file():
        raise TrackingError(f"study storage {url!r}: no such file; pass the --storage your studies "
                            "used (e.g. sqlite:///optuna.db in the folder you ran them in).")
    try:
        from optuna.storages import RDBStorage

        return RDBStorage(url)
    except Exception as exc:
        raise TrackingError(f"study storage {url!r} cannot be opened: {exc}") from None


def collect_studies(url: str | None) -> list[StudyRecord]:
    """Every study in storage ``url`` (none when ``url`` is None), by name."""
    if url is None:
        return []
    import optuna

    storage = open_storage(url)
    records = []
    for name in sorted(optuna.study.get_all_study_names(storage)):
        study = optuna.load_study(study_name=name, storage=storage)
        records.append(_record(study))
    return records


def _record(study) -> StudyRecord:
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    attrs = dict(study.user_attrs)
    dataset, variant = attrs.get("dataset"), attrs.get("variant")
    if dataset is None and variant is None and "-" in study.study_name:
        # Studies are named "<dataset>-<variant>" when no attributes say otherwise.
        dataset, variant = study.study_name.split("-", 1)
    direction = study.directions[0]
    minimize = direction == StudyDirection.MINIMIZE
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    count = {state: sum(t.state == state for t in trials) for state in TrialState}
    best, curve = None, []
    for i, trial in enumerate(trials, start=1):
        value = trial.value if trial.state == TrialState.COMPLETE and len(study.directions) == 1 else None
        if value is not None and math.isfinite(value):
            if best is None or (value < best.value if minimize else value > best.value):
                best = trial
        curve.append((i, None if best is None else best.value))
    return StudyRecord(
        name=study.study_name,
        dataset=dataset,
        variant=variant,
        direction="minimize" if minimize else "maximize",
        objective=str(attrs.get("objective", "objective")),
        complete=count[TrialState.COMPLETE],
        pruned=count[TrialState.PRUNED],
        failed=count[TrialState.FAIL],
        running=count[TrialState.RUNNING] + count[TrialState.WAITING],
        best_value=None if best is None else best.value,
        best_trial=None if best is None else best.number,
        best_params={} if best is None else dict(best.params),
        curve=curve,
        attrs=attrs,
    )
