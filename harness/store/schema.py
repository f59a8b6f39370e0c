"""What the stores hold, named once: tags, keys, status rules, the settings hash, storage URLs.

Campaigns, studies, reports and fidelity read and write runs through these
names; a rule written here (which run decides a campaign cell's status, how
a cell's settings are hashed, how a study storage is spelled) is the one the
writer and every reader apply.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# --- tags ----------------------------------------------------------------------------
VARIANT_TAG = "variant"
DATASET_TAG = "dataset"
FAILURE_TAG = "failure_reason"
FAILURE_CAUSE_TAG = "failure_cause"  # "environment": failed by the machine or the store, not by training
STOPPED_TAG = "stopped_reason"
CAMPAIGN_TAG = "campaign"  # the campaign's name, on its cells' runs and its parent
CELL_TAG = "campaign.cell"  # dataset/variant/sSEED
SETTINGS_TAG = "campaign.settings"  # the cell's settings as JSON (what CHANGED lists)
HASH_TAG = "campaign.settings_md5"  # settings_md5 of those settings
SUPERSEDED_TAG = "campaign.superseded"  # a run replaced by --rerun-changed (left out everywhere)
CAMPAIGN_PARENT_TAG = "campaign.parent"
CAMPAIGN_PARENT_EXPERIMENT = "campaigns"
# On a campaign's parent, from git at each start (harness/campaign/declared.py): the commits that first
# added and last changed the plan file and their times, and whether the plan as read differed from every
# commit (then the time it was first run so).
PLAN_PATH_TAG = "campaign.plan_path"
PLAN_FIRST_COMMIT_TAG = "campaign.plan_first_commit"
PLAN_FIRST_COMMITTED_TAG = "campaign.plan_first_committed"
PLAN_UNCOMMITTED_TAG = "campaign.plan_run_uncommitted"
PLAN_LAST_COMMIT_TAG = "campaign.plan_last_commit"  # the newest commit of the plan at the latest start
PLAN_LAST_COMMITTED_TAG = "campaign.plan_last_committed"
# A tuned campaign (harness/campaign/search.py): its trials are the cells of campaign "<name>:search"
# (a plan's name cannot hold ':'), so readers of "<name>" see its confirmation cells only.
SEARCH_SUFFIX = ":search"
SEARCH_TAG = "campaign.search"  # on a trial's run: the tuned campaign it belongs to
TRIAL_TAG = "campaign.trial"  # the trial's number within its arm
TUNING_METRIC_TAG = "campaign.tuning_metric"  # what chose each arm's best trial
WINNER_TAG = "campaign.tuned_from"  # on a confirmation cell's run: the trial whose settings it trains
# A campaign's seed group: one parent run per (campaign, dataset, variant) holding the seeds' mean, std,
# interval and n of each final metric; its seed runs are its children (mlflow.parentRunId) and carry
# IN_GROUP_TAG, so readers tell them from the trials of a study.
SEED_GROUP_TAG = "campaign.seed_group"  # on the group run: campaign/dataset/variant
IN_GROUP_TAG = "campaign.in_seed_group"  # on each seed run: the same key
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own: the UI nests a run under this parent
BACKBONE_EXPERIMENT = "backbones"  # the MLflow experiment of backbone trainings (reports leave it out)
STUDY_NAME_TAG = "optuna.study_name"
STUDY_PARENT_TAG = "optuna.parent"
TRIAL_NUMBER_TAG = "optuna.trial_number"
TRIAL_STATE_TAG = "optuna.trial_state"

# --- params and metrics other packages look up by name --------------------------------
DATA_COUNT_PARAM = "data_count"  # training images after max_images
DATA_FINGERPRINT_PARAM = "data_fingerprint"
EPOCHS_PARAM = "epochs"
FID_METRIC = "fid"
TRAINED_METRIC = "d_loss"  # logged by every trained epoch

# --- statuses --------------------------------------------------------------------------
FINISHED = "FINISHED"
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
# A campaign cell's: FINISHED, CHANGED (finished with settings the plan no longer has),
# the newest run's RUNNING / KILLED / FAILED, or MISSING (no run yet).
CELL_STATUSES = ("FINISHED", "CHANGED", "RUNNING", "KILLED", "FAILED", "MISSING")


class RunLike(Protocol):
    status: str
    tags: Mapping[str, str]
    metrics: Mapping[str, float]


def settings_md5(settings: Mapping[str, Any]) -> str:
    """The ``campaign.settings_md5`` tag of a cell with ``settings`` (12 hex digits, key order ignored)."""
    return hashlib.md5(json.dumps(dict(settings), sort_keys=True).encode()).hexdigest()[:12]


def trained(run: RunLike) -> bool:
    """Whether ``run`` counts as a trained cell: FINISHED, with the metrics its epochs log.

    Training ends a run FINISHED only after its last epoch's metrics, its
    generator and its final checkpoint are logged; a run ended FINISHED by
    anything else (MLflow's exit handler after a failure while the run was
    opened, in versions before this rule) has no training metrics and is not
    a trained cell.
    """
    return run.status == FINISHED and TRAINED_METRIC in run.metrics


def untrained_status(run: RunLike) -> str:
    """The status of a run that is no trained cell: stopped by the machine or the store, not by
    training (or FINISHED untrained), it is KILLED, so the next campaign retries it."""
    if run.status == FINISHED or (run.status == "FAILED" and run.tags.get(FAILURE_CAUSE_TAG) == "environment"):
        return "KILLED"
    return run.status


def cell_status(runs: Sequence[RunLike], md5: str) -> tuple[str, Any]:
    """A campaign cell's status and the run that decides it, from the cell's runs (newest first,
    superseded ones left out) and the md5 of its current settings.

    FINISHED: a trained run carries these settings; CHANGED: the newest
    trained run carries others; else the newest run's ``untrained_status``;
    MISSING (and no run) when there is none.
    """
    done = [r for r in runs if trained(r)]
    same = [r for r in done if r.tags.get(HASH_TAG) == md5]
    if same:
        return "FINISHED", same[0]
    if done:
        return "CHANGED", done[0]
    if runs:
        return untrained_status(runs[0]), runs[0]
    return "MISSING", None


def open_parent(uri: str, experiment: str, run_name: str, tags: Mapping[str, str], *,
                run_id: str | None = None, search: bool = True) -> str:
    """The id of a parent run (of a campaign or a study), set RUNNING again: ``run_id`` when the
    store still has it, else (with ``search``) the newest run of ``experiment`` carrying ``tags``,
    else a new run named ``run_name`` with ``tags``."""
    from harness.store import tracking

    if run_id and tracking.set_status(uri, run_id, "RUNNING"):
        return run_id
    if search:
        found = tracking.find_runs(uri, experiment, tags=tags, max_results=1)
        if found and tracking.set_status(uri, found[0].run_id, "RUNNING"):
            return found[0].run_id
    return tracking.RunLogger.create(uri, experiment, run_name=run_name, tags=tags).run_id


# --- study storage URLs ----------------------------------------------------------------
@dataclass(frozen=True)
class Storage:
    """An Optuna storage URL, read: its kind, its canonical spelling, and its file if it has one."""

    kind: str  # sqlite | journal | postgresql | mysql | unknown
    url: str  # journal:PATH, sqlite:///PATH, postgresql+psycopg://..., as given otherwise
    path: Path | None = None  # the SQLite or journal file


def parse_storage(url: str, journal_suffixes: tuple[str, ...] = (".journal",)) -> Storage:
    """Read a storage spelling: ``journal:PATH`` or a bare ``PATH`` ending in ``journal_suffixes``,
    ``sqlite:///PATH``, ``postgresql://`` / ``postgres://`` (the installed driver is psycopg 3),
    ``mysql...``; anything else is kind ``unknown``."""
    url = url.strip()
    if url.startswith("journal:"):
        return Storage("journal", url, Path(url[len("journal:"):]).expanduser())
    if url.endswith(journal_suffixes) and ":" not in url.split("/")[0]:
        return Storage("journal", "journal:" + url, Path(url).expanduser())
    if url.startswith(("postgresql://", "postgres://")):
        return Storage("postgresql", "postgresql+psycopg://" + url.split("://", 1)[1])
    if url.startswith("postgresql+psycopg://"):
        return Storage("postgresql", url)
    if url.startswith("sqlite:///"):
        return Storage("sqlite", url, Path(url[len("sqlite:///"):].split("?", 1)[0]))
    if url.startswith("mysql"):
        return Storage("mysql", url)
    return Storage("unknown", url)
