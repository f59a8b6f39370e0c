"""Read what training logged to MLflow: one ``RunRecord`` per run, metric histories, samples.

Only reads: runs are listed with ``search_runs`` in pages, so a store with
thousands of runs is read in a few queries. Nothing here trains or
recomputes a metric; a value that was never logged stays missing (``None``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import TrackingError, unknown_name
from variants.spec import AXES, VariantSpec

PAGE = 1000  # runs per search_runs page

# Params that must be equal for two runs to count as the same setting: every
# spec field (the architecture family and the optimisers) plus what changes
# the training itself. Seeds, paths, speed switches and the like are not in it.
SETTING_PARAMS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(VariantSpec) if f.name not in ("name", "source")
) + ("data_source", "epochs", "batch_size", "max_images", "width")

# The params that say how FID/KID/IS were computed; only equal keys are comparable.
EVAL_PARAMS = ("eval_backbone", "eval_n_real", "eval_n_fake")

# Per-epoch histories the plots draw.
HISTORY_KEYS = ("real_acc", "fake_acc", "d_loss", "g_loss", "fid")


@dataclass
class RunRecord:
    """One MLflow run as the report sees it."""

    run_id: str
    run_name: str
    experiment: str
    status: str  # FINISHED, FAILED, KILLED, RUNNING, SCHEDULED
    start_time: int  # ms since the epoch
    dataset: str | None
    variant: str | None
    seed: int | None
    axes: dict[str, str]  # the compared axes, as logged (strings)
    setting: tuple[tuple[str, str], ...]  # SETTING_PARAMS minus the axes, as (name, value)
    eval_key: tuple[str, str, str] | None  # (backbone, n_real, n_fake); None without evaluation
    metrics: dict[str, float]  # the last logged value of each metric
    artifact_uri: str = ""
    params: dict[str, str] = field(repr=False, default_factory=dict)
    tags: dict[str, str] = field(repr=False, default_factory=dict)
    reason: str | None = None  # why it failed or stopped, when logged

    @property
    def nested(self) -> bool:
        """True for a child run (e.g. an Optuna trial under its study's parent run)."""
        return "mlflow.parentRunId" in self.tags

    @property
    def short_id(self) -> str:
        return self.run_id[:8]


def open_store(uri: str):
    """An MlflowClient on ``uri``; a missing SQLite file is an error, not a new empty store."""
    from harness import tracking

    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            raise TrackingError(
                f"tracking store {uri!r}: no such file {str(path)!r}; pass the --tracking-uri your "
                "runs were logged to (the default is sqlite:///mlflow.db in the folder you trained in)."
            )
    try:
        client = tracking.client(uri)
        client.search_experiments(max_results=1)
    except TrackingError:
        raise
    except Exception as exc:  # an unreachable server, a file that is not a store, ...
        raise TrackingError(f"tracking store {uri!r} cannot be read: {exc}") from None
    return client


def experiments(client, names: list[str] | None = None) -> dict[str, str]:
    """Map experiment id -> name for ``names`` (all active experiments when None or empty).

    An unknown name is a ``ConfigError`` listing the experiments that exist.
    """
    found = {}
    token = None
    while True:
        page = client.search_experiments(max_results=PAGE, page_token=token)
        found.update({e.name: e.experiment_id for e in page})
        token = page.token
        if not token:
            break
    if not names:
        return {eid: name for name, eid in found.items()}
    chosen = {}
    for name in names:
        if name not in found:
            raise unknown_name("experiment", name, found,
                               "Leave out --experiment to report every experiment.")
        chosen[found[name]] = name
    return chosen


def collect_runs(client, experiment_ids: dict[str, str], filter_string: str = "") -> list[RunRecord]:
    """Every run of ``experiment_ids`` (id -> name), newest first, read page by page."""
    if not experiment_ids:
        return []
    records: list[RunRecord] = []
    token = None
    while True:
        page = client.search_runs(list(experiment_ids), filter_string=filter_string, max_results=PAGE,
                                  order_by=["attributes.start_time DESC"], page_token=token)
        records.extend(_record(run, experiment_ids) for run in page)
        token = page.token
        if not token:
            break
    return records


def _record(run, experiment_ids: dict[str, str]) -> RunRecord:
    params, tags = dict(run.data.params), dict(run.data.tags)
    axes = {axis: params[axis] for axis in AXES if axis in params}
    setting = tuple((k, params[k]) for k in SETTING_PARAMS if k in params and k not in AXES)
    eval_key = tuple(params[k] for k in EVAL_PARAMS) if all(k in params for k in EVAL_PARAMS) else None
    try:
        seed = int(params["seed"]) if "seed" in params else None
    except ValueError:
        seed = None
    return RunRecord(
        run_id=run.info.run_id,
        run_name=run.info.run_name or "",
        experiment=experiment_ids.get(run.info.experiment_id, run.info.experiment_id),
        status=run.info.status,
        start_time=run.info.start_time or 0,
        # The class as loaded (``horses`` and ``cifar10:horses`` are the same data).
        dataset=params.get("data_name") or tags.get("dataset") or params.get("dataset"),
        variant=tags.get("variant") or params.get("variant"),
        seed=seed,
        axes=axes,
        setting=setting,
        eval_key=eval_key,
        metrics=dict(run.data.metrics),
        artifact_uri=run.info.artifact_uri or "",
        params=params,
        tags=tags,
        reason=tags.get("failure_reason") or tags.get("stopped_reason"),
    )


def load_histories(client, run_ids: list[str], keys: tuple[str, ...] = HISTORY_KEYS
                   ) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per-epoch values: ``{run_id: {key: [(step, value), ...]}}`` sorted by step.

    A step logged twice (e.g. around a resume) keeps its newest value.
    """
    out: dict[str, dict[str, list[tuple[int, float]]]] = {run_id: {} for run_id in run_ids}
    bulk = _bulk_history(client)
    for key in keys:
        if bulk is not None:
            rows = []
            for i in range(0, len(run_ids), 500):  # keep the SQL IN list modest
                rows += [(m.run_id, m) for m in bulk(run_ids[i:i + 500], key, max_results=10**9)]
        else:
            rows = [(run_id, m) for run_id in run_ids for m in client.get_metric_history(run_id, key)]
        latest: dict[str, dict[int, tuple[int, float]]] = {}
        for run_id, metric in rows:
            steps = latest.setdefault(run_id, {})
            old = steps.get(metric.step)
            if old is None or metric.timestamp >= old[0]:
                steps[metric.step] = (metric.timestamp, metric.value)
        for run_id, steps in latest.items():
            out[run_id][key] = [(step, value) for step, (_, value) in sorted(steps.items())]
    return out


def _bulk_history(client):
    # SQL stores answer one query per metric key for many runs; other stores
    # (a remote server) get one call per run and key through the public API.
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    method = getattr(store, "get_metric_history_bulk", None)
    return method if callable(method) else None


def artifacts(run: RunRecord, tracking_uri: str):
    """The artifact repository of ``run`` (one lookup, then plain file reads for local stores)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(run.artifact_uri, tracking_uri=tracking_uri)


def sample_epochs(repo) -> list[tuple[int, str]]:
    """The logged sample grids in artifact repository ``repo`` as (epoch, path), by epoch."""
    found = []
    try:
        listing = repo.list_artifacts("samples")
    except Exception:  # no artifact folder at all
        return []
    for item in listing:
        name = Path(item.path).name
        if name.startswith("epoch_") and name.endswith(".png"):
            try:
                found.append((int(name[len("epoch_"):-len(".png")]), item.path))
            except ValueError:
                continue
    return sorted(found)


def download(repo, path: str, folder: str | Path) -> Path | None:
    """Copy one artifact into ``folder``; None when it cannot be read."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(repo.download_artifacts(path, str(folder)))
    except Exception:
        return None


def as_dict(record: RunRecord) -> dict[str, Any]:
    """A flat row for the runs table."""
    return {
        "run_id": record.run_id, "run_name": record.run_name, "experiment": record.experiment,
        "status": record.status, "dataset": record.dataset, "variant": record.variant,
        "seed": record.seed, "reason": record.reason,
    }
