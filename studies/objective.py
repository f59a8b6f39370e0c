"""The objective: one trial is one training run, scored by FID (or KID) at its last epoch.

Each evaluated epoch's KID is reported to the trial, whatever the objective:
evaluations during training give KID (and precision/recall) but not FID,
which is computed only at the end because its bias depends on the sample
count. When the pruner says so, the run is stopped (its MLflow run ends
KILLED) and the trial is PRUNED.
A run that diverges (NaN) raises ``TrainingFailed``; the trial is then FAIL
with the reason as its ``fail_reason`` attribute and the study goes on.
Every trial's run is a child of the study's MLflow parent run and carries the
trial number and final state as tags; the trial carries the run id.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from harness.config import RunConfig
from harness.errors import TrainingFailed
from harness.measure.provenance import DESCRIPTION_PARAMS, EVAL_PARAMS
from harness.store import tracking
from harness.train import run as train
from studies import space as spaces
from studies.storage import worker_id

# Optuna is imported inside functions: the CLI imports this module (through
# studies.runner), and `--help`, `variants` and `datasets` must not load it.

PARENT_TAG = "mlflow.parentRunId"  # what makes MLflow show a run nested under another
PRUNE_ON = "kid"  # logged by every evaluation, the quick ones during training included


class Objective:
    """Callable for ``study.optimize``: ``Objective(base, space, metric)(trial) -> score``.

    ``base`` holds everything trials share (variant, data, tracking, evaluation);
    each trial replaces the sampled fields. ``metric`` is the score at the last
    epoch; ``prune_on`` the metric reported to the pruner at each evaluation.
    ``train_fn`` is ``harness.train.run.run`` unless given (tests pass a stand-in).
    """

    def __init__(self, base: RunConfig, space: spaces.Space, metric: str = "fid", *,
                 study_name: str, parent_run_id: str | None = None, prune_on: str = PRUNE_ON,
                 train_fn: Callable[..., Any] | None = None, log=print):
        self.base, self.space, self.metric, self.prune_on = base, space, metric, prune_on
        self.study_name, self.parent_run_id = study_name, parent_run_id
        self.train_fn, self.log = train_fn, log

    def config_for(self, trial, params: dict[str, Any]) -> RunConfig:
        """The run config of ``trial`` given its sampled ``params``."""
        tags = {**self.base.tags, "optuna.study_name": self.study_name,
                "optuna.trial_number": str(trial.number), "optuna.trial_state": "RUNNING"}
        if self.parent_run_id:
            tags[PARENT_TAG] = self.parent_run_id
        return self.base.replace(**spaces.run_fields(params), tags=tags,
                                 run_name=f"{self.study_name}-trial{trial.number}")

    def __call__(self, trial) -> float:
        import optuna

        run = self.train_fn or train.run
        params = spaces.suggest(trial, self.space)
        config = self.config_for(trial, params)
        trial.set_user_attr("worker", worker_id())

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            if self.prune_on not in metrics:  # not an evaluated epoch
                return
            value = metrics[self.prune_on]
            if not math.isfinite(value):
                raise TrainingFailed(f"{self.prune_on} became {value} at epoch {epoch}.")
            trial.report(value, step=epoch)
            if trial.should_prune():
                raise train.StopRun(f"pruned at epoch {epoch}: {self.prune_on}={value:.4g} is worse "
                                    "than the pruner's threshold for that epoch", status="KILLED")

        try:
            result = run(config, on_epoch=on_epoch, log=self.log)
        except TrainingFailed as exc:
            trial.set_user_attr("fail_reason", str(exc))
            self._finish(trial, config, None, "FAIL")
            raise
        except BaseException as exc:  # a bug or an interrupt: recorded, then it stops the study
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:1000])
            self._finish(trial, config, None, "FAIL")
            raise
        trial.set_user_attr("epochs_done", result.epochs_done)
        if result.status != "FINISHED":
            trial.set_user_attr("pruned_reason", result.reason or result.status)
            self._finish(trial, config, result.run_id, "PRUNED")
            raise optuna.TrialPruned(result.reason)
        if self.metric not in result.metrics:
            trial.set_user_attr("fail_reason", f"the last epoch has no {self.metric}")
            self._finish(trial, config, result.run_id, "FAIL")
            raise TrainingFailed(f"run {result.run_id} logged no {self.metric} at its last epoch; "
                                 "studies need --eval-every > 0.")
        self._finish(trial, config, result.run_id, "COMPLETE")
        return float(result.metrics[self.metric])

    def _finish(self, trial, config: RunConfig, run_id: str | None, state: str) -> None:
        """Link the trial and its MLflow run both ways and record the trial's final state."""
        if run_id is None:  # failed before it returned: find its run, if it got one
            found = tracking.find_runs(config.tracking_uri, config.resolved().experiment, max_results=1, tags={
                "optuna.study_name": self.study_name, "optuna.trial_number": str(trial.number)})
            if not found:  # failed before its run was created (e.g. unreadable data)
                return
            run_id = found[0].run_id
        trial.set_user_attr("mlflow_run_id", run_id)
        run = tracking.RunLogger(config.tracking_uri, run_id)
        run.set_tags({"optuna.trial_state": state})
        if "eval_backbone" not in trial.study.user_attrs:  # a study run without the runner's check
            params = tracking.get_run(config.tracking_uri, run_id).params
            for key in (*EVAL_PARAMS, *DESCRIPTION_PARAMS):
                if key in params:
                    trial.study.set_user_attr(key, params[key])
