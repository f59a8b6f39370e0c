"""Run a study: ``run_study(settings)`` searches one (dataset, variant) pair, resuming it.

Top to bottom: check the inputs (variant, data, space), create the MLflow
store and experiment once, create or load the Optuna study (``load_if_exists``),
open the study's MLflow parent run, run the trials still missing (here, or in
``--workers`` processes), then write the best trial and the plots to the parent.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import RunConfig
from harness.errors import ConfigError, TrainingFailed
from studies import record
from studies import space as spaces
from studies import storage as storages
from studies.objective import OBJECTIVES, Objective

SAMPLERS = ("tpe", "random", "cmaes", "grid")
PRUNERS = ("median", "hyperband", "none")
# Study attributes that must not change when a study is resumed.
IDENTITY = ("variant", "dataset", "objective")


@dataclass(frozen=True)
class StudySettings:
    """One study: what is searched, how, where it is stored and logged."""

    variant: str
    dataset: str
    trials: int  # the total the study should reach, counting earlier trials
    study_name: str | None = None  # None: "<class>-<variant>"
    storage: str | None = None  # None: ./optuna.db, or ./optuna.journal with several workers
    tracking_uri: str = RunConfig.tracking_uri
    experiment: str | None = None  # None: the class name, as for `run`
    max_images: int | None = None
    seed: int = 0
    objective: str = "fid"
    sampler: str = "tpe"
    pruner: str = "median"
    workers: int = 1
    space: dict[str, Any] = field(default_factory=dict)  # JSON form; empty: the default space
    label_smoothing: bool = False  # add label smoothing to the default space
    eval_every: int = 5
    eval_samples: int = 5000
    backbone: str = "auto"
    inception: str | None = None
    width: float = 1.0
    image_size: int = 32
    checkpoint_dir: str = "checkpoints"
    xla: str = "auto"
    progress: bool = False

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"--trials={self.trials} must be at least 1 (the total the study should reach).")
        if self.workers < 1:
            raise ConfigError(f"--workers={self.workers} must be at least 1.")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"--objective {self.objective!r} must be one of {', '.join(OBJECTIVES)}.")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler {self.sampler!r} must be one of {', '.join(SAMPLERS)}.")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner {self.pruner!r} must be one of {', '.join(PRUNERS)}.")
        if self.eval_every < 1:
            raise ConfigError(f"--eval-every={self.eval_every}: a study scores trials by "
                              f"{self.objective.upper()}, so it must evaluate; give 1 or more.")

    @property
    def class_name(self) -> str:
        return RunConfig(variant=self.variant, dataset=self.dataset).class_name

    @property
    def name(self) -> str:
        return self.study_name or default_study_name(self.dataset, self.variant)

    @property
    def storage_url(self) -> str:
        return storages.normalise(self.storage, self.workers)

    def search_space(self) -> spaces.Space:
        default = spaces.default_space(self.class_name, self.label_smoothing)
        given = {name: spaces._from_json(name, value) for name, value in self.space.items()}
        return spaces.check({**default, **given})

    def base_config(self) -> RunConfig:
        """The run config every trial starts from (sampled fields replaced per trial)."""
        return RunConfig(
            variant=self.variant, dataset=self.dataset, seed=self.seed, max_images=self.max_images,
            image_size=self.image_size, tracking_uri=self.tracking_uri, experiment=self.experiment,
            checkpoint_dir=self.checkpoint_dir, width=self.width, eval_every=self.eval_every,
            eval_samples=self.eval_samples, backbone=self.backbone, inception=self.inception,
            xla=self.xla, progress=self.progress, tags={"optuna.storage": _public(self.storage_url)},
        ).resolved()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StudySettings:
        return cls(**json.loads(text))


def default_study_name(dataset: str, variant: str) -> str:
    """``horses-bn_kernel4``; a source prefix is kept (``animals10-horses-bn``)."""
    class_name = RunConfig(variant=variant, dataset=dataset).class_name
    source = dataset.split(":", 1)[0] if ":" in dataset else ""
    prefix = f"{source}-" if source and source not in ("folder", "cifar10") else ""
    return f"{prefix}{class_name}-{variant}"


def run_study(settings: StudySettings, log=print) -> dict[str, Any]:
    """Bring ``settings.name`` to ``settings.trials`` trials; return a summary
    (study, storage, parent run, trial counts, best trial). Raises HarnessError
    subclasses for bad inputs before any trial starts."""
    from harness import tracking
    from harness.data import load_dataset
    from variants import resolve

    # --- check everything a trial needs, once ------------------------------------------
    search = settings.search_space()
    resolve(settings.variant)
    base = settings.base_config()
    largest_batch = max(_values(search.get("batch_size", base.batch_size)))
    # Loading also fills the decode cache before workers share it.
    images = len(load_dataset(settings.dataset, image_size=settings.image_size,
                              max_images=settings.max_images).images)
    if images < largest_batch:
        raise ConfigError(f"{settings.dataset!r} gives {images} images, fewer than the largest batch size "
                          f"searched ({largest_batch}); add images (--max-images) or search smaller "
                          "batches, e.g. --param batch_size=32,64.")
    sampler_for(settings, search, 0, 0)  # a missing optional package fails here, not in a worker
    backbone = _backbone_name(settings)  # a missing backbone too, before any trial exists
    # The MLflow database and experiment are created here, before any worker:
    # concurrent first use of a new store breaks it.
    tracking.ensure_store(settings.tracking_uri)
    tracking.experiment_id(settings.tracking_uri, base.experiment)

    # --- the study: created, or loaded and checked ----------------------------------------
    study = load_or_create(settings, search, backbone)
    _fail_orphans(study, settings, "were left RUNNING by a worker that is gone", log)
    parent = record.open_parent(study, settings.tracking_uri, base.experiment,
                                {"variant": settings.variant, "dataset": settings.dataset})
    missing = settings.trials - len(study.get_trials(deepcopy=False))
    log(f"study {settings.name} in {_public(settings.storage_url)}: "
        f"{len(study.trials)} trials so far, {max(missing, 0)} to run "
        f"({settings.sampler} sampler, {settings.pruner} pruner, minimising {settings.objective})")

    # --- the missing trials ---------------------------------------------------------------
    status, failed_workers = "FINISHED", 0
    try:
        if missing > 0 and settings.workers == 1:
            optimize(settings, missing, worker=0, log=log)
        elif missing > 0:
            from studies import workers

            shares = [missing // settings.workers + (i < missing % settings.workers)
                      for i in range(settings.workers)]
            codes = workers.run_workers(settings, [s for s in shares if s], log=log)
            failed_workers = sum(code != 0 for code in codes)
            _fail_orphans(study, settings, "lost their worker (re-run to replace them)", log)
    except BaseException:
        status = "KILLED"
        raise
    finally:
        study = _reload(settings)
        summary = record.close_parent(study, settings.tracking_uri, parent, settings.objective)
        if status != "FINISHED":
            tracking.client(settings.tracking_uri).set_terminated(parent, status=status)

    # --- report ---------------------------------------------------------------------------
    summary.update(study=settings.name, storage=_public(settings.storage_url), parent_run_id=parent,
                   dashboard=storages.dashboard_command(_public(settings.storage_url)),
                   failed_workers=failed_workers)
    if "metric_note" in study.user_attrs:
        summary["metric_note"] = study.user_attrs["metric_note"]
    return summary


def load_or_create(settings: StudySettings, search: spaces.Space, backbone: str | None = None):
    """Create the study, or load it if it exists (checking that it searches the same thing
    and, given the ``backbone`` name, that its scores come from the same backbone)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = settings.storage_url
    storage = storages.open_storage(url)
    study = optuna.create_study(storage=storage, study_name=settings.name, direction="minimize",
                                load_if_exists=True)
    attrs = {"variant": settings.variant, "dataset": settings.dataset, "objective": settings.objective}
    for key in IDENTITY:
        old = study.user_attrs.get(key)
        if old is not None and old != attrs[key]:
            raise ConfigError(
                f"study {settings.name!r} in {_public(url)} has {key} {old!r}, not {attrs[key]!r}; "
                "pass another --study-name or the original flags.")
    attrs.update(space=json.dumps(spaces.to_json(search)), seed=settings.seed,
                 max_images=settings.max_images, width=settings.width, image_size=settings.image_size,
                 experiment=settings.base_config().experiment, tracking_uri=settings.tracking_uri,
                 sampler=settings.sampler, pruner=settings.pruner, eval_every=settings.eval_every,
                 eval_samples=settings.eval_samples, backbone=settings.backbone)
    scored_by = study.user_attrs.get("eval_backbone")
    if backbone and scored_by and scored_by != backbone:
        raise ConfigError(f"study {settings.name!r} was scored with the {scored_by} backbone, now "
                          f"{backbone} would be used; their {settings.objective.upper()} values do not "
                          "compare. Pass the original --backbone/--inception or another --study-name.")
    if backbone:
        attrs["eval_backbone"] = backbone
        if "inception" not in backbone.lower():
            attrs["metric_note"] = (f"{settings.objective.upper()} uses the offline {backbone} backbone, "
                                    "not Inception: compare it only with runs scored by the same backbone")
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

    seed = settings.seed + 1000 * worker + existing
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":
        return optuna.samplers.GridSampler(spaces.grid(search), seed=seed)
    if settings.sampler == "cmaes":
        try:
            import cmaes  # noqa: F401  (CmaEsSampler fails late without it)
        except ImportError:
            raise ConfigError("--sampler cmaes needs the cmaes package: pip install cmaes.") from None
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)


def pruner_for(settings: StudySettings, search: spaces.Space):
    """Median: stop a trial whose score is worse than the median of earlier trials at the
    same epoch (after 2 finished trials). Hyperband: over 1..the most epochs searched."""
    import optuna

    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    if settings.pruner == "hyperband":
        epochs = max(_values(search.get("epochs", settings.base_config().epochs)))
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=int(epochs), reduction_factor=3)
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)


def best_run(study_name: str, storage: str | None) -> dict[str, Any]:
    """What ``run --from-study`` trains: the study's variant, dataset and data settings,
    and its best trial's params as run fields (``epochs``, ``batch_size``, ``overrides``)."""
    import optuna

    url = storages.normalise(storage, 1) if storage else _existing_default(study_name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=storages.open_storage(url))
    except KeyError:
        names = optuna.get_all_study_names(storages.open_storage(url))
        raise ConfigError(f"--from-study: no study {study_name!r} in {_public(url)}; studies there: "
                          f"{', '.join(names) or 'none'}. Pass --storage where it lives.") from None
    try:
        best = study.best_trial
    except ValueError:
        raise ConfigError(f"--from-study: study {study_name!r} has no COMPLETE trial yet; run more "
                          "trials (`python -m harness study ...`).") from None
    params = {**{k[len("fixed_"):]: v for k, v in best.user_attrs.items() if k.startswith("fixed_")},
              **best.params}
    overrides = {key: float(params[name]) for name, key in (
        ("g_lr", "g_lr"), ("d_lr", "d_lr"), ("beta_1", "g_beta_1"), ("beta_1", "d_beta_1"),
        ("label_smoothing", "label_smoothing")) if name in params}
    attrs = study.user_attrs
    return {"variant": attrs["variant"], "dataset": attrs["dataset"], "max_images": attrs.get("max_images"),
            "width": attrs.get("width", 1.0), "image_size": attrs.get("image_size", 32),
            "seed": attrs.get("seed", 0), "epochs": params.get("epochs"),
            "batch_size": params.get("batch_size"), "overrides": overrides,
            "trial": best.number, "value": best.value, "objective": attrs.get("objective", "fid")}


def _existing_default(study_name: str) -> str:
    """The default storage that holds ``study_name`` (SQLite first, then the journal)."""
    import optuna

    for url in (storages.DEFAULT_SQLITE, storages.DEFAULT_JOURNAL):
        path = Path(url.split(":", 1)[1].lstrip("/") if url.startswith("journal:") else url[len("sqlite:///"):])
        if path.exists() and study_name in optuna.get_all_study_names(storages.open_storage(url)):
            return url
    raise ConfigError(f"--from-study: no study {study_name!r} in ./optuna.db or ./optuna.journal; "
                      "pass --storage where the study lives.")


def _fail_orphans(study, settings: StudySettings, why: str, log) -> None:
    """Fail the trials of dead local workers, and end their MLflow runs FAILED too."""
    numbers = storages.fail_orphans(study)
    if numbers:
        record.end_runs(settings.tracking_uri, settings.base_config().experiment, study.study_name,
                        numbers, "FAILED")
        log(f"trials {numbers} {why}; marked FAIL")


def _backbone_name(settings: StudySettings) -> str:
    from harness.metrics.backbones import load_backbone

    return load_backbone(settings.backbone, inception_path=settings.inception).name


def _reload(settings: StudySettings):
    import optuna

    return optuna.load_study(study_name=settings.name, storage=storages.open_storage(settings.storage_url))


def _values(dist: Any) -> list[Any]:
    if isinstance(dist, spaces.Range):
        return [dist.low, dist.high]
    if isinstance(dist, spaces.Choice):
        return list(dist.values)
    return [dist]


def _public(url: str) -> str:
    return storages._redact(url)
