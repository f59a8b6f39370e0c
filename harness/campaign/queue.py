"""The cells still to run, shared by every worker through an Optuna storage.

Each cell to run is an enqueued (WAITING) trial of the study
``campaign-<name>`` that holds the cell's key. A worker claims one by moving it
to RUNNING: Optuna's storages let exactly one caller do that
(``set_trial_state_values`` returns False to every other), on SQLite, a
journal file or PostgreSQL alike, so a cell is never handed out twice. While
a cell trains, its worker records a heartbeat (database storages); a trial
whose heartbeats stop (the worker was killed, its machine lost) is failed by
the next worker that looks, and a copy is enqueued, which another worker
claims and resumes from the cell's checkpoint. A journal file (workers on one
machine) has no heartbeats: there a dead worker is recognised by its pid.

Optuna is used as a queue here, not as an optimiser: nothing is sampled.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from harness.store.schema import parse_storage
from studies import storage as storages
from studies.storage import worker_id

KEY = "cell"  # the user attr holding a trial's cell key
MAX_RETRY = 3  # a cell whose worker dies this often is left FAILED (e.g. it runs out of memory)


@dataclass(frozen=True)
class Claim:
    """A cell this worker owns until it calls ``finish``."""

    trial_id: int
    number: int
    key: str


class CellQueue:
    """The queue of campaign ``name`` in the storage at ``url`` (a normalised URL)."""

    def __init__(self, name: str, url: str, heartbeat_s: int = storages.HEARTBEAT_S):
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.url, self.heartbeat_s = url, heartbeat_s
        self.storage = storages.open_storage(url, heartbeat_s=heartbeat_s, grace_s=4 * heartbeat_s,
                                             max_retry=MAX_RETRY)
        self.study = optuna.create_study(storage=self.storage, study_name=f"campaign-{name}",
                                         load_if_exists=True)
        self.study_id = self.study._study_id

    @classmethod
    def existing(cls, name: str, url: str) -> CellQueue | None:
        """The queue of campaign ``name`` if its storage and study exist, else None; creates nothing
        (for ``--status``, which only reads)."""
        storage = parse_storage(url)
        if storage.path is not None and (not storage.path.is_file() or storage.path.stat().st_size == 0):
            return None
        queue = cls.__new__(cls)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        queue.url, queue.heartbeat_s = url, storages.HEARTBEAT_S
        queue.storage = storages.open_storage(url, max_retry=MAX_RETRY)
        try:
            queue.study_id = queue.storage.get_study_id_from_name(f"campaign-{name}")
        except KeyError:
            return None
        return queue

    def trials(self, *states: TrialState) -> list:
        return self.storage.get_all_trials(self.study_id, deepcopy=False, states=states or None)

    def sync(self, keys: list[str]) -> list[str]:
        """Enqueue the cells of ``keys`` not already waiting or running; return those enqueued."""
        present = {t.user_attrs.get(KEY) for t in self.trials(TrialState.WAITING, TrialState.RUNNING)}
        added = [key for key in keys if key not in present]
        for key in added:
            self.study.enqueue_trial({}, user_attrs={KEY: key})
        return added

    def claim(self, keys: set[str] | None = None) -> Claim | None:
        """Take the first waiting cell (moving it to RUNNING), or None when none waits.

        With ``keys`` (the cells of this worker's version of the plan), only those: a plan
        edited while workers run grows or shrinks, and each worker leaves the cells it does
        not know to the workers started with the plan that has them.
        """
        self.requeue_dead()
        for trial in sorted(self.trials(TrialState.WAITING), key=lambda t: t.number):
            if keys is not None and trial.user_attrs.get(KEY) not in keys:
                continue
            if not self.storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                continue  # another worker took it first
            claim = Claim(trial._trial_id, trial.number, trial.user_attrs[KEY])
            self.storage.set_trial_user_attr(claim.trial_id, "worker", worker_id())
            self._beat(claim)
            if self._duplicate(claim):
                self.finish(claim, TrialState.FAIL, reason="enqueued twice; another worker has this cell")
                continue
            return claim
        return None

    def _duplicate(self, claim: Claim) -> bool:
        # Two machines starting at once can enqueue a cell twice; while both copies run, the
        # lower trial number keeps it. (A copy claimed after the other finished finds the
        # cell FINISHED in MLflow and is not trained again: see run.work.)
        return any(t.user_attrs.get(KEY) == claim.key and t.number < claim.number
                   for t in self.trials(TrialState.RUNNING))

    def running_elsewhere(self) -> int:
        """How many cells other workers hold (they may die and hand theirs back)."""
        return len(self.trials(TrialState.RUNNING))

    def finish(self, claim: Claim, state: TrialState, value: float | None = None,
               reason: str | None = None) -> None:
        """Give up ``claim`` as COMPLETE (with ``value``) or FAIL (with ``reason``)."""
        if reason:
            self.storage.set_trial_user_attr(claim.trial_id, "fail_reason", reason[:1000])
        values = [value if value is not None and math.isfinite(value) else 0.0] if state == TrialState.COMPLETE else None
        self.storage.set_trial_state_values(claim.trial_id, state=state, values=values)

    @contextlib.contextmanager
    def heartbeat(self, claim: Claim):
        """Record ``claim``'s heartbeat every ``heartbeat_s`` while the block runs."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat_s):
                self._beat(claim)

        thread = threading.Thread(target=beat, name="campaign-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _beat(self, claim: Claim) -> None:
        if hasattr(self.storage, "record_heartbeat"):
            with contextlib.suppress(Exception):  # a missed beat is retried at the next one
                self.storage.record_heartbeat(claim.trial_id)

    def requeue_dead(self) -> None:
        """Fail the cells of workers that are gone, enqueueing each again (at most MAX_RETRY times)."""
        if hasattr(self.storage, "record_heartbeat"):
            with warnings.catch_warnings():  # marked experimental since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)  # re-enqueues through the storage's callback
        # A worker on this host whose pid is gone is dead now: no need to wait for its heartbeat
        # to go stale (minutes), on any storage.
        for trial in self.trials(TrialState.RUNNING):
            if not storages.orphaned(trial):
                continue
            self.storage.set_trial_user_attr(trial._trial_id, "fail_reason",
                                             f"worker {trial.user_attrs['worker']} exited during the cell")
            if not self.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
            retries = trial.system_attrs.get("retry_history", [])
            if len(retries) < MAX_RETRY:
                self.study.add_trial(optuna.create_trial(
                    state=TrialState.WAITING, user_attrs={KEY: trial.user_attrs[KEY]},
                    system_attrs={"retry_history": [*retries, trial.number]}))

    def holders(self) -> dict[str, str]:
        """Cell key -> the worker (``host:pid``) running it now; a worker of this host that is
        gone reads ``host:pid (gone)``."""
        return {t.user_attrs.get(KEY): str(t.user_attrs.get("worker", "?")) + (" (gone)" if storages.orphaned(t) else "")
                for t in self.trials(TrialState.RUNNING)}

    def waiting(self) -> set[str]:
        return {t.user_attrs.get(KEY) for t in self.trials(TrialState.WAITING)}
