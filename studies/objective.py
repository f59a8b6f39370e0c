"""The objective: one trial is one training run, scored by FID (or KID) at its last epoch.

Each evaluated epoch's score is reported to the trial; when the pruner says
so, the run is stopped (its MLflow run ends KILLED) and the trial is PRUNED.
A run that diverges (NaN) raises ``TrainingFailed``; the trial is then FAIL
with the reason as its ``fail_reason`` attribute and the study goes on.
Every trial's run is a child of the study's MLflow parent run and carries the
trial number and final state as tags; the trial carries the run id.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from harness.config import RunConfig
from harness.errors import TrainingFailed
from studies import space as spaces
from studies.storage import worker_id

OBJECTIVES = ("fid", "kid")
PARENT_TAG = "mlflow.parentRunId"  # what makes MLflow show a run nested under another


class Objective:
    """Callable for ``study.optimize``: ``Objective(base, space, metric)(trial) -> score``.

    ``base`` holds everything trials share (variant, data, tracking, evaluation);
    each trial replaces the sampled fields. ``train_fn`` is ``harness.train.run``
    unless given (tests pass a stand-in).
    """

    def __init__(self, base: RunConfig, space: spaces.Space, metric: str = "fid", *,
                 study_name: str, parent_run_id: str | None = None,
                 train_fn: Callable[..., Any] | None = None, log=print):
        self.base, self.space, self.metric = base, space, metric
        self.study_name, self.parent_run_id = study_name, parent_run_id
        self.train_fn, self.log = train_fn, log

    def config_for(self, trial, params: dict[str, Any]) -> RunConfig:
        """The run config of ``trial`` given its sampled ``params``."""
        overrides = dict(self.base.overrides)
        for name, key in (("g_lr", "g_lr"), ("d_lr", "d_lr"), ("beta_1", "g_beta_1"),
                          ("beta_1", "d_beta_1"), ("label_smoothing", "label_smoothing")):
            if name in params:
                overrides[key] = float(params[name])
        tags = {**self.base.tags, "optuna.study_name": self.study_name,
                "optuna.trial_number": str(trial.number), "optuna.trial_state": "RUNNING"}
        if self.parent_run_id:
            tags[PARENT_TAG] = self.parent_run_id
        return dataclasses.replace(
            self.base, overrides=overrides, tags=tags,
            epochs=int(params.get("epochs", self.base.epochs or 0)) or None,
            batch_size=int(params.get("batch_size", self.base.batch_size)),
            run_name=f"{self.study_name}-trial{trial.number}")

    def __call__(self, trial) -> float:
        import optuna

        from harness import train

        run = self.train_fn or train.run
        params = spaces.suggest(trial, self.space)
        config = self.config_for(trial, params)
        trial.set_user_attr("worker", worker_id())

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            if self.metric not in metrics:  # not an evaluated epoch
                return
            value = metrics[self.metric]
            if not math.isfinite(value):
                raise TrainingFailed(f"{self.metric} became {value} at epoch {epoch}.")
            trial.report(value, step=epoch)
            if trial.should_prune():
                raise train.StopRun(f"pruned at epoch {epoch}: {self.metric}={value:.4g} is worse "
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
        from harness import tracking

        if self.train_fn is not None:
            return  # a stand-in trainer logs nothing to MLflow
        client = tracking.client(config.tracking_uri)
        run_id = run_id or _find_run(client, config, self.study_name, trial.number)
        if run_id is None:  # failed before its run was created (e.g. unreadable data)
            return
        trial.set_user_attr("mlflow_run_id", run_id)
        client.set_tag(run_id, "optuna.trial_state", state)
        if "eval_backbone" not in trial.study.user_attrs:
            backbone = client.get_run(run_id).data.params.get("eval_backbone")
            if backbone:
                trial.study.set_user_attr("eval_backbone", backbone)


def _find_run(client, config: RunConfig, study_name: str, number: int) -> str | None:
    experiment = client.get_experiment_by_name(config.resolved().experiment)
    if experiment is None:
        return None
    found = client.search_runs(
        [experiment.experiment_id],
        filter_string=(f"tags.`optuna.study_name` = '{study_name}' AND "
                       f"tags.`optuna.trial_number` = '{number}'"),
        order_by=["attributes.start_time DESC"], max_results=1)
    return found[0].info.run_id if found else None
