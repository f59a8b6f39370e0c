"""Read what training logged to MLflow: one ``RunRecord`` per run, metric histories, samples.

Only reads, and only through ``harness.store.tracking`` (MLflow's public API):
runs are listed in pages, so a store with thousands of runs is read in a few
queries. Nothing here trains or recomputes a metric; a value that was never
logged stays missing (``None``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import TrackingError, unknown_name
from harness.measure.provenance import describe, eval_key, quality_warning
from harness.store import schema, tracking
from harness.store.schema import BACKBONE_EXPERIMENT
from harness.store.sqlite import check_store_to_read
from variants.spec import AXES, VariantSpec

# Params that must be equal for two runs to count as the same setting: every
# spec field (the architecture family and the optimisers) plus what changes
# the training itself. Seeds, paths, speed switches and the like are not in it.
SETTING_PARAMS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(VariantSpec) if f.name not in ("name", "source")
) + ("data_source", "epochs", "batch_size", "max_images", "width")

_AXIS_DEFAULTS = {f.name: f.default for f in dataclasses.fields(VariantSpec) if f.name in AXES}

PARENT_TAG = schema.CAMPAIGN_PARENT_TAG

# Per-epoch histories the plots draw.
HISTORY_KEYS = ("real_acc", "fake_acc", "d_loss", "g_loss", "fid", "kid", "precision", "recall", "density",
                "coverage")

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
    eval_key: tuple[str | None, ...] | None  # provenance.EVAL_PARAMS' values; None: never evaluated
    metrics: dict[str, float]  # the last logged value of each metric
    artifact_uri: str = ""
    params: dict[str, str] = field(repr=False, default_factory=dict)
    tags: dict[str, str] = field(repr=False, default_factory=dict)
    reason: str | None = None  # why it failed or stopped, when logged

    @property
    def nested(self) -> bool:
        """True for a child run (e.g. an Optuna trial under its study's parent run)."""
        return "mlflow.parentRunId" in self.tags and schema.IN_GROUP_TAG not in self.tags  # not a seed group's

    @property
    def campaign_parent(self) -> bool:
        """True for a campaign's parent run (it holds the plan; no training)."""
        return self.tags.get(PARENT_TAG) == "true"

    @property
    def backbone_training(self) -> bool:
        """True for a run that trained the offline FID backbone (not a GAN run)."""
        return self.experiment == BACKBONE_EXPERIMENT or "backbone" in self.tags

    @property
    def eval_label(self) -> str:
        """How its FID/KID/IS were computed, in words (backbone, file, accuracy, counts)."""
        return describe(self.params)

    @property
    def eval_warning(self) -> str | None:
        """Why its FID/KID/IS say little (a backbone under the quality floor), or None."""
        return quality_warning(self.params)

    @property
    def short_id(self) -> str:
        return self.run_id[:8]


def experiments(uri: str, names: list[str] | None = None) -> dict[str, str]:
    """Map experiment id -> name for ``names`` (all active experiments when None or empty).

    A missing SQLite file is a ``TrackingError`` (not a new empty store); an
    unknown name is a ``ConfigError`` listing the experiments that exist.
    """
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            raise TrackingError(
                f"tracking store {uri!r}: no such file {str(path)!r}; pass the --tracking-uri your "
                "runs were logged to (the default is sqlite:///mlflow.db in the folder you trained in)."
            )
        if not check_store_to_read(path, uri):  # an empty file: nothing to report, and nothing written
            return {}
    found = tracking.list_experiments(uri)
    if not names:
        return {eid: name for name, eid in found.items()}
    chosen = {}
    for name in names:
        if name not in found:
            raise unknown_name("experiment", name, found,
                               "Leave out --experiment to report every experiment.")
        chosen[found[name]] = name
    return chosen


def collect_runs(uri: str, experiment_ids: dict[str, str], tags: dict[str, str] | None = None) -> list[RunRecord]:
    """Every run of ``experiment_ids`` (id -> name) whose tags equal ``tags``, newest first."""
    runs = tracking.find_runs(uri, list(experiment_ids.values()), tags=tags)
    return [_record(run, experiment_ids) for run in runs]


def _record(run: tracking.StoredRun, experiment_ids: dict[str, str]) -> RunRecord:
    params, tags = dict(run.params), dict(run.tags)
    # An axis added after a run was logged takes the spec's default, which is
    # what that run trained with; the run still pairs with newer runs.
    axes = {}
    if any(axis in params for axis in AXES):
        axes = {axis: params.get(axis, str(_AXIS_DEFAULTS[axis])) for axis in AXES}
    setting = tuple((k, params[k]) for k in SETTING_PARAMS if k in params and k not in AXES)
    try:
        seed = int(params["seed"]) if "seed" in params else None
    except ValueError:
        seed = None
    return RunRecord(
        run_id=run.run_id,
        run_name=run.name,
        experiment=experiment_ids.get(run.experiment_id, run.experiment_id),
        status=run.status,
        start_time=run.start_time,
        # The class as loaded (``horses`` and ``cifar10:horses`` are the same data).
        dataset=params.get("data_name") or tags.get("dataset") or params.get("dataset"),
        variant=tags.get("variant") or params.get("variant"),
        seed=seed,
        axes=axes,
        setting=setting,
        eval_key=eval_key(params),
        metrics=dict(run.metrics),
        artifact_uri=run.artifact_uri,
        params=params,
        tags=tags,
        reason=tags.get("failure_reason") or tags.get("stopped_reason"),
    )


def load_histories(uri: str, run_ids: list[str], keys: tuple[str, ...] = HISTORY_KEYS
                   ) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per-epoch values: ``{run_id: {key: [(step, value), ...]}}`` sorted by step.

    A step logged twice (e.g. around a resume) keeps its newest value.
    """
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for run_id, by_key in tracking.metric_histories(uri, run_ids, keys).items():
        out[run_id] = {}
        for key, metrics in by_key.items():
            latest: dict[int, tuple[int, float]] = {}
            for metric in metrics:
                old = latest.get(metric.step)
                if old is None or metric.timestamp >= old[0]:
                    latest[metric.step] = (metric.timestamp, metric.value)
            if latest:
                out[run_id][key] = [(step, value) for step, (_, value) in sorted(latest.items())]
    return out


def sample_epochs(uri: str, run: RunRecord) -> list[tuple[int, str]]:
    """The logged sample grids of ``run`` as (epoch, artifact path), by epoch."""
    found = []
    for path in tracking.list_artifacts(uri, run.run_id, "samples"):
        name = Path(path).name
        if name.startswith("epoch_") and name.endswith(".png"):
            try:
                found.append((int(name[len("epoch_"):-len(".png")]), path))
            except ValueError:
                continue
    return sorted(found)


def download(uri: str, run: RunRecord, path: str, folder: str | Path) -> Path | None:
    """Copy one artifact of ``run`` into ``folder``; None when it cannot be read."""
    try:
        return tracking.download_artifact(uri, run.run_id, path, folder)
    except Exception:
        return None
