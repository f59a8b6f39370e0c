"""Run a study: ``run_study(settings)`` searches one (dataset, variant) pair, resuming it.

Top to bottom: check the inputs (variant, data, space), create the MLflow
store and experiment once, create or load the Optuna study (``load_if_exists``),
open the study's MLflow parent run, run the trials still missing (here, or in
``--workers`` processes), then write the best trial and the plots to the parent.
"""

from __future__ import annotations

from typing import Any

from harness.data import load_dataset
from harness.errors import ConfigError
from harness.measure.backbones import load_backbone
from harness.store import tracking
from harness.store.urls import redact
from studies import record
from studies import storage as storages
from studies.optimize import load_or_create, optimize, pruner_for, sampler_for, values_of
from studies.settings import StudySettings
from studies.workers import run_workers

# Optuna is imported inside functions: the CLI imports this module, and `--help`,
# `variants` and `datasets` must not load it.


def run_study(settings: StudySettings, log=print) -> dict[str, Any]:
    """Bring ``settings.name`` to ``settings.trials`` trials; return a summary
    (study, storage, parent run, trial counts, best trial). Raises HarnessError
    subclasses for bad inputs before any trial starts."""
    # --- check everything a trial needs, once ------------------------------------------
    search = settings.search_space()
    base = settings.base_config()
    largest_batch = max(values_of(search.get("batch_size", base.batch_size)))
    # Loading also fills the decode cache before workers share it.
    images = len(load_dataset(base.dataset, image_size=base.image_size, max_images=base.max_images).images)
    if images < largest_batch:
        raise ConfigError(f"{base.dataset!r} gives {images} images, fewer than the largest batch size "
                          f"searched ({largest_batch}); add images (--max-images) or search smaller "
                          "batches, e.g. --param batch_size=32,64.")
    sampler_for(settings, search, 0, 0)  # a missing optional package fails here, not in a worker
    pruner_for(settings, search)
    # A missing backbone fails too, before any trial exists.
    backbone = load_backbone(base.backbone, inception_path=base.inception).identity
    # The MLflow database and experiment are created here, before any worker:
    # concurrent first use of a new store breaks it.
    tracking.ensure_store(base.tracking_uri)
    tracking.experiment_id(base.tracking_uri, base.experiment)

    # --- the study: created, or loaded and checked ----------------------------------------
    url = redact(settings.storage_url)
    study = load_or_create(settings, search, backbone)
    _fail_orphans(study, settings, "were left RUNNING by a worker that is gone", log)
    parent = record.open_parent(study, base.tracking_uri, base.experiment,
                                {"variant": base.variant, "dataset": base.dataset})
    missing = settings.trials - len(study.get_trials(deepcopy=False))
    log(f"study {settings.name} in {url}: {len(study.trials)} trials so far, {max(missing, 0)} to run "
        f"({settings.sampler} sampler, {settings.pruner} pruner, minimising {settings.objective})")

    # --- the missing trials ---------------------------------------------------------------
    status, failed_workers = "FINISHED", 0
    try:
        if missing > 0 and settings.workers == 1:
            optimize(settings, missing, worker=0, log=log)
        elif missing > 0:
            shares = [missing // settings.workers + (i < missing % settings.workers)
                      for i in range(settings.workers)]
            codes = run_workers(settings, [s for s in shares if s], log=log)
            failed_workers = sum(code != 0 for code in codes)
            _fail_orphans(study, settings, "lost their worker (re-run to replace them)", log)
    except BaseException:
        status = "KILLED"
        raise
    finally:
        study = _reload(settings)
        summary = record.close_parent(study, base.tracking_uri, parent, settings.objective,
                                      status=status)

    # --- report ---------------------------------------------------------------------------
    summary.update(study=settings.name, storage=url, parent_run_id=parent,
                   dashboard=storages.dashboard_command(url), failed_workers=failed_workers)
    if "metric_note" in study.user_attrs:
        summary["metric_note"] = study.user_attrs["metric_note"]
    return summary


def summary_lines(summary: dict[str, Any], objective: str) -> list[str]:
    """What the ``study`` command prints for one study's ``summary`` (from ``run_study``)."""
    counts = ", ".join(f"{summary[k]} {k}" for k in ("complete", "pruned", "fail") if summary.get(k))
    lines = [f"study {summary['study']}: {summary['trials']} trials ({counts or 'none finished'}); "
             f"MLflow parent run {summary['parent_run_id']}"]
    if "best_value" in summary:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in summary["best_params"].items())
        lines.append(f"  best: trial {summary['best_trial']}, {objective} {summary['best_value']:.4g} "
                     f"({params}); train it with `python -m harness run --from-study {summary['study']}`")
    if "metric_note" in summary:
        lines.append(f"  note: {summary['metric_note']}")
    return [*lines, f"  dashboard: {summary['dashboard']}"]


def _fail_orphans(study, settings: StudySettings, why: str, log) -> None:
    """Fail the trials of dead local workers, and end their MLflow runs FAILED too."""
    numbers = storages.fail_orphans(study)
    if numbers:
        base = settings.base_config()
        record.end_runs(base.tracking_uri, base.experiment, study.study_name, numbers, "FAILED")
        log(f"trials {numbers} {why}; marked FAIL")


def _reload(settings: StudySettings):
    import optuna

    return optuna.load_study(study_name=settings.name, storage=storages.open_storage(settings.storage_url))
