"""Run a campaign: ``run_campaign(plan)`` trains every cell still missing, here or in workers.

Top to bottom: check everything a cell needs (data on this machine, the
backbone, the tracking store), read where each cell stands, refuse silently
reusing results of changed settings, log the plan to its parent run, enqueue
what is left, then work: claim a cell, resume or start its run, finish it,
print a line with the campaign's position and ETA; until no cell is left.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from optuna.trial import TrialState

from harness import processes
from harness.campaign.declared import plan_history
from harness.campaign.groups import write_seed_groups
from harness.campaign.plan import CELL_TAG, HASH_TAG, TAG, Cell, Plan
from harness.campaign.queue import CellQueue
from harness.campaign.state import SUPERSEDED_TAG, CellState, cell_states, eta_seconds, seconds_per_image_epoch, trained
from harness.data import load_dataset
from harness.errors import ConfigError, TrainingFailed
from harness.measure.backbone_training import ensure_backbone
from harness.measure.backbones import load_backbone
from harness.store import schema, tracking
from harness.store.schema import SEARCH_SUFFIX
from harness.store.urls import redact
from harness.train import checkpoints
from harness.train import run as train
from harness.train.progress import duration
from studies import storage as storages

PARENT_EXPERIMENT = schema.CAMPAIGN_PARENT_EXPERIMENT
POLL_S = 5  # how often an idle worker looks again while other workers still hold cells


@dataclass
class Options:
    """How this machine runs the plan."""

    storage: str | None = None  # the queue's Optuna storage (None: ./optuna.db, a journal with workers)
    workers: int = 1
    retry_failed: bool = False
    rerun_changed: bool = False
    heartbeat_s: int = storages.HEARTBEAT_S
    worker: bool = False  # a worker started by another process: work only

    @property
    def url(self) -> str:
        return storages.normalise(self.storage, self.workers)


@dataclass
class Outcome:
    """What a ``campaign`` command did."""

    finished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped_failed: list[str] = field(default_factory=list)
    failed_workers: int = 0


def run_campaign(plan: Plan, options: Options, log=print) -> Outcome:
    """Bring ``plan`` to every cell FINISHED (or FAILED); see the module docstring."""
    outcome = Outcome()
    if not options.worker:
        # --- check everything a cell needs, once, before anything trains ----------------------
        uri = check_machine(plan)
        states = cell_states(plan)
        changed = [s for s in states if s.status == "CHANGED"]
        if changed and not options.rerun_changed:
            raise ConfigError(describe_changes(changed))
        for state in changed:
            tracking.RunLogger(uri, state.run.run_id).set_tags({SUPERSEDED_TAG: "settings changed"})
        outcome.skipped_failed = [s.cell.key for s in states if s.status == "FAILED" and not options.retry_failed]
        todo = [s.cell.key for s in states if s.status not in ("FINISHED", "FAILED")
                or (s.status == "FAILED" and options.retry_failed)]
        parent = open_parent(plan, uri)

        # --- enqueue what is left ----------------------------------------------------------------
        queue = CellQueue(plan.name, options.url, options.heartbeat_s)
        added = queue.sync(todo)
        done = sum(s.status == "FINISHED" for s in states)
        log(f"campaign {plan.name}: {len(plan.cells)} cells, {done} finished, {len(todo)} to run "
            f"({len(added)} newly queued) in {redact(options.url)}"
            + (f"; {len(outcome.skipped_failed)} FAILED left alone (--retry-failed retries them)"
               if outcome.skipped_failed else ""))
        for note in plan.notes:
            log(f"note: {note}")
        try:
            if options.workers > 1:
                outcome.failed_workers = _start_workers(plan, options, log)
            else:
                work(plan, options, outcome, log)
            if not plan.name.endswith(SEARCH_SUFFIX):  # a search's trials are no seeds of one setting
                write_seed_groups(plan, uri)  # mean, std and interval over seeds per arm, for the MLflow UI
        finally:
            tracking.RunLogger(uri, parent).end("FINISHED", best_effort=True)
        return outcome
    work(plan, options, outcome, log)
    return outcome


def check_machine(plan: Plan) -> str:
    """Check that this machine has every dataset, the backbone and a tracking store; return the store."""
    for dataset in plan.datasets:
        cells = [c.config.resolved() for c in plan.cells if c.dataset == dataset]
        for config in {(c.image_size, c.max_images, c.batch_size): c for c in cells}.values():
            load_dataset(config.dataset, image_size=config.image_size, max_images=config.max_images,
                         min_images=config.batch_size)
    for config in {(c.config.backbone, c.config.inception): c.config for c in plan.cells
                   if c.config.resolved().eval_every}.values():
        # A fresh machine gets the offline backbone here, once, not in each worker.
        ensure_backbone(config.backbone, inception_path=config.inception, tracking_uri=config.tracking_uri)
        load_backbone(config.backbone, inception_path=config.inception)
    uri = plan.cells[0].config.tracking_uri
    tracking.ensure_store(uri)
    for experiment in sorted({c.config.resolved().experiment for c in plan.cells} | {PARENT_EXPERIMENT}):
        tracking.experiment_id(uri, experiment)  # created once, before any worker
    return uri


def describe_changes(changed: list[CellState]) -> str:
    lines = [f"{len(changed)} cell(s) of the plan changed since their runs finished:"]
    for state in changed[:10]:
        what = ", ".join(f"{k}: was {old!r}, now {new!r}" for k, (old, new) in state.changes.items())
        lines.append(f"  {state.cell.key} (run {state.run.run_id}): {what}")
    if len(changed) > 10:
        lines.append(f"  ... and {len(changed) - 10} more")
    lines.append("Restore those settings in the plan to keep the results, or pass --rerun-changed to train "
                 "them again (the old runs are tagged campaign.superseded and left out of reports).")
    return "\n".join(lines)


def open_parent(plan: Plan, uri: str) -> str:
    """The campaign's parent run (experiment ``campaigns``), holding the plan and its cells."""
    logger = tracking.RunLogger(uri, schema.open_parent(uri, PARENT_EXPERIMENT, plan.name,
                                                        {TAG: plan.name, schema.CAMPAIGN_PARENT_TAG: "true"}))
    logger.log_text(plan.text, "plan.toml")
    logger.log_json([{"cell": c.key, "experiment": c.config.resolved().experiment, **c.settings}
                     for c in plan.cells], "cells.json")
    if plan.hypotheses is not None:  # what the report may conclude, as declared before the runs
        logger.log_json(plan.hypotheses.to_dict(), "hypotheses.json")
    if plan.tuning is not None:  # how every arm was searched before its cells (harness/campaign/tuning.py)
        logger.log_json(plan.tuning.to_dict(), "tuning.json")
    history = plan_history(plan.path)
    if schema.PLAN_UNCOMMITTED_TAG in history and tracking.get_run(uri, logger.run_id).tags.get(
            schema.PLAN_UNCOMMITTED_TAG):
        del history[schema.PLAN_UNCOMMITTED_TAG]  # keep the first time it ran uncommitted
    logger.set_tags(history)
    logger.set_tags({"campaign.cells": str(len(plan.cells)), "campaign.datasets": ",".join(plan.datasets),
                     "campaign.variants": ",".join(plan.variants),
                     "campaign.seeds": ",".join(map(str, plan.seeds))})
    return logger.run_id


def work(plan: Plan, options: Options, outcome: Outcome, log) -> None:
    """Claim and train cells until none is left (waiting while other workers may hand one back)."""
    queue = CellQueue(plan.name, options.url, options.heartbeat_s)
    cells = {cell.key: cell for cell in plan.cells}
    while True:
        claim = queue.claim(set(cells))
        if claim is None:
            if queue.running_elsewhere():
                time.sleep(POLL_S)
                continue
            return
        cell = cells[claim.key]
        if finished_run(cell) is not None:  # finished meanwhile, by a duplicate of its queue entry
            queue.finish(claim, TrialState.COMPLETE)
            continue
        with queue.heartbeat(claim):
            try:
                result = train_cell(cell, log)
            except TrainingFailed as exc:
                queue.finish(claim, TrialState.FAIL, reason=str(exc))
                outcome.failed.append(cell.key)
                log(f"cell {cell.key} FAILED: {exc}")
                continue
            except BaseException as exc:
                queue.finish(claim, TrialState.FAIL, reason=f"{type(exc).__name__}: {exc}")
                raise
        if result.status == "FINISHED":
            queue.finish(claim, TrialState.COMPLETE, value=result.metrics.get("fid"))
            outcome.finished.append(cell.key)
        else:
            queue.finish(claim, TrialState.FAIL, reason=result.reason or result.status)
            outcome.failed.append(cell.key)
        log(progress_line(plan, cell, result))


def finished_run(cell: Cell):
    """The FINISHED run of ``cell`` with its current settings, or None."""
    config = cell.config.resolved()
    for run in tracking.find_runs(config.tracking_uri, config.experiment, status="FINISHED",
                                  tags={TAG: config.tags[TAG], CELL_TAG: cell.key, HASH_TAG: cell.settings_md5}):
        if SUPERSEDED_TAG not in run.tags and trained(run):
            return run
    return None


def train_cell(cell: Cell, log) -> train.RunResult:
    """Train ``cell``: resume its unfinished run from the checkpoint, or start it."""
    config = cell.config.resolved()
    resume = None
    earlier = tracking.find_runs(config.tracking_uri, config.experiment, not_status="FINISHED",
                                 tags={TAG: config.tags[TAG], CELL_TAG: cell.key})
    for run in earlier:
        if SUPERSEDED_TAG in run.tags:
            continue
        folder = Path(config.checkpoint_dir) / run.run_id
        if checkpoints.list_checkpoints(folder) and resume is None:
            resume = run.run_id
        elif run.status in ("RUNNING", "KILLED") and not checkpoints.list_checkpoints(folder):
            # Died before its first checkpoint: nothing to resume, so it must not count as the cell.
            tracking.RunLogger(config.tracking_uri, run.run_id).end(
                "FAILED", reason="its worker stopped before the first checkpoint; the cell was started again")
            tracking.RunLogger(config.tracking_uri, run.run_id).set_tags({SUPERSEDED_TAG: "no checkpoint"})
    prefix = f"[{cell.key}] "
    run_config = cell.config
    if resume is None and earlier:  # a new attempt: told apart from the stopped runs in the MLflow UI
        run_config = run_config.replace(run_name=f"{config.run_name}-attempt{len(earlier) + 1}")
    return train.run(run_config, resume=resume, log=lambda text: log(prefix + text))


def progress_line(plan: Plan, cell: Cell, result: train.RunResult) -> str:
    """``cell dataset/variant/sN FINISHED: fid .., real_acc .., fake_acc .., 3.2 min | 7/30 finished, ETA ..``."""
    states = cell_states(plan)
    finished = sum(s.status == "FINISHED" for s in states)
    metrics = result.metrics
    shown = ", ".join(f"{k} {metrics[k]:.4g}" for k in ("fid", "kid", "real_acc", "fake_acc") if k in metrics)
    minutes = sum(m.get("epoch_seconds", 0) + m.get("eval_seconds", 0) + m.get("tracking_seconds", 0)
                  for m in result.history) / 60
    return (f"cell {cell.key} {result.status}: {shown}, {minutes:.1f} min | {finished}/{len(states)} finished"
            f"{eta_text(states)}")


def eta_text(states: list[CellState], workers: int = 1) -> str:
    """``, ETA 1h12m (at 4.1 ms per image-epoch)`` from the cells measured so far, or ''."""
    left = eta_seconds(states, workers)
    if left is None or all(s.status == "FINISHED" for s in states):
        return ""
    return f", ETA {duration(left)} (at {1000 * seconds_per_image_epoch(states):.1f} ms per image-epoch)"


def _start_workers(plan: Plan, options: Options, log) -> int:
    """Run ``options.workers`` worker processes on this machine; return how many failed."""
    command = [sys.executable, "-m", "harness", "campaign", plan.path, "--worker", "--storage", options.url,
               "--heartbeat", str(options.heartbeat_s), "--tracking-uri", plan.cells[0].config.tracking_uri,
               "--checkpoint-dir", plan.cells[0].config.checkpoint_dir, "--max-cells", str(len(plan.cells))]
    return sum(code != 0 for code in processes.run_workers([command] * options.workers, log=log))
