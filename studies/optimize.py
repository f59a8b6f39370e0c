"""Trials of an existing study in this process: the study's sampler, pruner and objective.

``load_or_create`` creates the study (or loads and checks it); ``optimize``
runs trials of it, here or in a worker process (studies/workers.py).
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

from harness.errors import ConfigError, TrainingFailed
from harness.measure.provenance import BackboneIdentity
from harness.store.urls import redact
from studies import record
from studies import space as spaces
from studies import storage as storages
from studies.objective import Objective
from studies.settings import StudySettings

# Optuna is imported inside functions: the CLI imports this module (through
# studies.runner), and `--help`, `variants` and `datasets` must not load it.

# Study attributes that must not change when a study is resumed.
IDENTITY = ("variant", "dataset", "objective")
RUN_CONFIG_ATTR = "run_config"  # the base run config (JSON) every trial started from


def load_or_create(settings: StudySettings, search: spaces.Space, backbone: BackboneIdentity | None = None):
    """Create the study, or load it if it exists (checking that it searches the same thing
    and, given the ``backbone`` identity, that its scores come from the same backbone file)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = settings.storage_url
    study = optuna.create_study(storage=storages.open_storage(url), study_name=settings.name,
                                direction="minimize", load_if_exists=True)
    run = settings.run
    attrs: dict[str, Any] = {"variant": run.variant, "dataset": run.dataset, "objective": settings.objective}
    for key in IDENTITY:
        old = study.user_attrs.get(key)
        if old is not None and old != attrs[key]:
            raise ConfigError(
                f"study {settings.name!r} in {redact(url)} has {key} {old!r}, not {attrs[key]!r}; "
                "pass another --study-name or the original flags.")
    base = settings.base_config()
    # The base config without where it is stored: URLs may carry passwords.
    stored = {k: v for k, v in base.to_dict().items() if k not in ("tracking_uri", "tags")}
    attrs.update(space=json.dumps(spaces.to_json(search)), seed=run.seed, max_images=run.max_images,
                 width=run.width, image_size=base.image_size, experiment=base.experiment,
                 sampler=settings.sampler, pruner=settings.pruner, eval_every=base.eval_every,
                 eval_samples=run.eval_samples, backbone=run.backbone,
                 **{RUN_CONFIG_ATTR: json.dumps(stored, sort_keys=True)})
    if backbone is not None:
        scored_by = (study.user_attrs.get("eval_backbone"), study.user_attrs.get("eval_backbone_md5"))
        if scored_by[0] is not None and scored_by != (backbone.name, backbone.md5):
            raise ConfigError(
                f"study {settings.name!r} was scored with the {scored_by[0]} backbone (md5 {scored_by[1]}), now "
                f"{backbone.name} (md5 {backbone.md5}) would be used; their {settings.objective.upper()} values "
                "do not compare. Pass the original --backbone/--inception or another --study-name.")
        attrs.update(backbone.params())
        notes = [] if "inception" in backbone.name.lower() else [
            f"{settings.objective.upper()} uses the offline {backbone.name} backbone, not Inception: compare it "
            "only with runs scored by the same backbone file"]
        note = "; ".join(notes + ([backbone.warning] if backbone.warning else []))
        if note:
            attrs["metric_note"] = note
    for key, value in attrs.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    return study


def optimize(settings: StudySettings, n_trials: int, worker: int = 0, log=print) -> None:
    """Run up to ``n_trials`` trials of the (existing) study in this process.

    Stops early once the study holds ``settings.trials`` trials in any state
    (other workers, here or on other machines, count too).
    """
    import optuna
    from optuna.study import MaxTrialsCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = settings.search_space()
    storage = storages.open_storage(settings.storage_url)
    existing = len(optuna.load_study(study_name=settings.name, storage=storage).trials)
    study = optuna.load_study(study_name=settings.name, storage=storage,
                              sampler=sampler_for(settings, search, worker, existing),
                              pruner=pruner_for(settings, search))
    objective = Objective(settings.base_config(), search, settings.objective, study_name=settings.name,
                          parent_run_id=study.user_attrs.get(record.PARENT_ATTR), log=log)
    study.optimize(objective, n_trials=n_trials, catch=(TrainingFailed,),
                   callbacks=[MaxTrialsCallback(settings.trials, states=None)])


def sampler_for(settings: StudySettings, search: spaces.Space, worker: int, existing: int):
    """The seeded sampler. Each worker, and each resumption, gets its own seed
    (``seed + 1000 * worker + trials so far``) so none repeats another's samples."""
    import optuna

    seed = settings.run.seed + 1000 * worker + existing
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":
        return optuna.samplers.GridSampler(spaces.grid(search), seed=seed)
    if settings.sampler == "cmaes":
        if importlib.util.find_spec("cmaes") is None:  # CmaEsSampler fails late without it
            raise ConfigError("--sampler cmaes needs the cmaes package: pip install cmaes.")
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)


def pruner_for(settings: StudySettings, search: spaces.Space):
    """Median: stop a trial whose score is worse than the median of earlier trials at the
    same epoch (after 2 finished trials). Hyperband: over 1..the most epochs searched."""
    import optuna

    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    if settings.pruner == "hyperband":
        epochs = max(values_of(search.get("epochs", settings.base_config().epochs)))
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=int(epochs), reduction_factor=3)
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)


def values_of(dist: Any) -> list[Any]:
    """The extreme values a search parameter can take."""
    if isinstance(dist, spaces.Range):
        return [dist.low, dist.high]
    if isinstance(dist, spaces.Choice):
        return list(dist.values)
    return [dist]
