"""Train one variant on one dataset and log everything to MLflow: ``run(config)``.

The function reads top to bottom: resolve the config, load the data, check the
tracking store, build and compile the GAN, start (or resume) the MLflow run,
then one pass per epoch of train -> log metrics -> sample grid -> checkpoint
-> evaluate, and finally log the generator and end the run. The run always
ends FINISHED, FAILED (with the reason) or KILLED — never left RUNNING.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import checkpoints
from harness.config import RunConfig
from harness.errors import ConfigError, DataError, TrainingFailed

SAMPLE_GRID = 64  # images in each epoch's sample grid (8 x 8)


class StopRun(Exception):
    """Raised by an ``on_epoch`` callback to end training early (e.g. a pruned trial)."""

    def __init__(self, reason: str, status: str = "KILLED"):
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass
class RunResult:
    """What a run produced: where it is logged and how it ended."""

    run_id: str
    status: str
    epochs_done: int
    metrics: dict[str, float] = field(default_factory=dict)  # the last epoch's
    history: list[dict[str, float]] = field(default_factory=list)
    model_uri: str | None = None
    checkpoint: str | None = None
    reason: str | None = None


def run(config: RunConfig, *, resume: str | None = None,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        log=print) -> RunResult:
    """Train ``config`` end to end. ``resume`` continues an existing run id.

    ``on_epoch(epoch, metrics)`` is called after each epoch's metrics are logged
    and may raise ``StopRun`` to end the run early. Raises ``HarnessError``
    subclasses for user mistakes (before any run is created) and
    ``TrainingFailed`` when training diverges (the run is then FAILED).
    """
    from harness import tracking
    from harness.data import load_dataset
    from variants import canonical_name, resolve

    # --- resolve the config, the variant and the data -------------------------------
    config = config.resolved()
    spec = resolve(config.variant).replace(**config.overrides)
    dataset = load_dataset(config.dataset, image_size=config.image_size,
                           max_images=config.max_images, min_images=config.batch_size)
    if len(dataset.images) < config.batch_size:
        raise DataError(
            f"dataset {config.dataset!r} has {len(dataset.images)} images, fewer than one batch "
            f"(--batch-size {config.batch_size}); lower --batch-size or add images."
        )
    spec = spec.for_image(dataset.images.shape[1], dataset.images.shape[3])
    if config.width != 1.0:
        spec = spec.scaled(config.width)
    tracking.ensure_store(config.tracking_uri)
    _check_writable(config.checkpoint_dir, "--checkpoint-dir")

    # --- model ---------------------------------------------------------------------
    import keras
    import tensorflow as tf

    from harness.gan import GAN
    from harness.callbacks import NonFiniteGuard, ProgressBar

    keras.utils.set_random_seed(config.seed)
    gan = GAN(spec, seed=config.seed)
    gan.compile(jit_compile={"auto": "auto", "on": True, "off": False}[config.xla],
                steps_per_execution=config.steps_per_execution)
    steps = len(dataset.images) // config.batch_size
    data = (tf.data.Dataset.from_tensor_slices(dataset.images)
            .shuffle(len(dataset.images), seed=config.seed, reshuffle_each_iteration=True)
            .batch(config.batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))
    fixed_noise = np.random.default_rng(config.seed).standard_normal(
        (SAMPLE_GRID, spec.latent_dim)).astype(np.float32)

    # --- tracking: a new run, or the one being resumed ----------------------------------
    first_epoch = 1
    if resume:
        run_id, first_epoch, fixed_noise = _resume(config, resume, gan, log)
        logger = tracking.RunLogger.start(config.tracking_uri, config.experiment, run_id=run_id)
    else:
        tags = {"variant": config.variant, "dataset": config.dataset, "variant_canonical": canonical_name(spec),
                "data_source": dataset.source, **config.tags}
        logger = tracking.RunLogger.start(
            config.tracking_uri, config.experiment,
            run_name=config.run_name or f"{config.variant}-{config.class_name}-s{config.seed}", tags=tags)
        logger.log_params({**spec.to_params(), **_config_params(config), **dataset.params(),
                           "steps_per_epoch": steps})
        logger.log_dataset(dataset.name, dataset.path, dataset.fingerprint, len(dataset.images))
        logger.log_json(config.to_dict(), "config.json")
    run_id = logger.run_id
    ckpt_dir = Path(config.checkpoint_dir) / run_id
    log(f"run {run_id}: {config.variant} on {config.dataset} ({len(dataset.images)} images, "
        f"{config.epochs} epochs, batch {config.batch_size}) -> {config.tracking_uri}")

    evaluator = _evaluator(config, spec, dataset) if config.eval_every else None
    if evaluator is not None:
        logger.log_params(evaluator.params())

    # --- train ----------------------------------------------------------------------
    result = RunResult(run_id=run_id, status="RUNNING", epochs_done=first_epoch - 1)
    previous_sigterm = _sigterm_as_interrupt()
    try:
        tracking_seconds = 0.0
        for epoch in range(first_epoch, config.epochs + 1):
            guard = NonFiniteGuard()
            bar = ProgressBar(epoch, config.epochs, steps, config.batch_size, enabled=config.progress)
            start = time.perf_counter()
            history = gan.fit(data, epochs=1, verbose=0, shuffle=False, callbacks=[bar, guard])
            seconds = time.perf_counter() - start
            if guard.bad is not None:
                raise TrainingFailed(
                    f"{guard.bad} became {guard.value} at epoch {epoch}, step {guard.step}; the last good "
                    f"checkpoint (epoch {epoch - 1}) is kept. Try a lower learning rate."
                )
            metrics = {k: float(v[-1]) for k, v in history.history.items()}
            metrics.update(images_per_s=steps * config.batch_size / seconds, epoch_seconds=seconds,
                           tracking_seconds=tracking_seconds)

            # --- log: metrics, sample grid, checkpoint, evaluation --------------------
            start = time.perf_counter()
            logger.log_metrics(metrics, step=epoch)
            if epoch % config.sample_every == 0 or epoch == config.epochs:
                logger.log_png(_sample_grid(gan, fixed_noise), f"samples/epoch_{epoch:04d}.png")
            result.checkpoint = str(checkpoints.save(
                ckpt_dir, epoch, gan, {"run_id": run_id, "config": config.to_dict()},
                arrays={"fixed_noise": fixed_noise}, keep=config.keep_checkpoints))
            tracking_seconds = time.perf_counter() - start
            if evaluator is not None and (epoch % config.eval_every == 0 or epoch == config.epochs):
                scores = evaluator.evaluate(gan.generator, latent_dim=spec.latent_dim, seed=config.seed)
                logger.log_metrics(scores, step=epoch)
                metrics.update(scores)
            result.epochs_done, result.metrics = epoch, metrics
            result.history.append(metrics)
            if on_epoch is not None:
                on_epoch(epoch, metrics)

        # --- finish: the generator as a model, the last checkpoint -------------------
        result.model_uri = "models:/" + logger.log_generator(gan.generator, _pip_requirements())
        if result.checkpoint:
            logger.log_file(result.checkpoint, "checkpoints")
        logger.end("FINISHED")
        result.status = "FINISHED"
    except StopRun as stop:
        logger.set_tags({"stopped_reason": stop.reason})
        logger.end(stop.status)
        result.status, result.reason = stop.status, stop.reason
    except KeyboardInterrupt:
        # Keep what was trained so far (the state between two steps is consistent).
        result.checkpoint = str(checkpoints.save(
            ckpt_dir, result.epochs_done, gan, {"run_id": run_id, "config": config.to_dict()},
            arrays={"fixed_noise": fixed_noise}, keep=config.keep_checkpoints))
        logger.end("KILLED", reason=f"interrupted during epoch {result.epochs_done + 1}")
        result.status = "KILLED"
        raise
    except TrainingFailed as exc:
        logger.end("FAILED", reason=str(exc))
        raise
    except BaseException as exc:
        logger.end("FAILED", reason=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        _restore_sigterm(previous_sigterm)
    return result


def find_resumable(config: RunConfig) -> str:
    """The newest unfinished run of ``config``'s variant and dataset that has a checkpoint."""
    from harness import tracking

    config = config.resolved()
    client = tracking.client(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is not None:
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=(f"tags.variant = '{config.variant}' AND tags.dataset = '{config.dataset}' "
                           "AND attributes.status != 'FINISHED'"),
            order_by=["attributes.start_time DESC"], max_results=50)
        for found in runs:
            if checkpoints.list_checkpoints(Path(config.checkpoint_dir) / found.info.run_id):
                return found.info.run_id
    raise ConfigError(
        f"--resume: no unfinished run of {config.variant} on {config.dataset} with a checkpoint in "
        f"{config.checkpoint_dir!r} (experiment {config.experiment!r}); pass a run id or start a new run."
    )


def _config_params(config: RunConfig) -> dict[str, Any]:
    skip = {"tags", "overrides", "progress", "run_name"}
    return {k: v for k, v in config.to_dict().items() if k not in skip}


def _resume(config: RunConfig, run_id: str, gan, log) -> tuple[str, int, np.ndarray]:
    """Restore the newest readable checkpoint of ``run_id``; return (run id, next epoch, noise)."""
    folder = Path(config.checkpoint_dir) / run_id
    meta = checkpoints.latest_valid(folder, gan, warn=log)
    if meta is None:
        raise ConfigError(
            f"no readable checkpoint for run {run_id} in {folder}; start a new run without --resume."
        )
    saved = RunConfig.from_dict(meta["config"])
    changed = {k: (v, config.training_fields().get(k)) for k, v in saved.training_fields().items()
               if config.training_fields().get(k) != v}
    if changed:
        details = "; ".join(f"{k}: was {old!r}, now {new!r}" for k, (old, new) in changed.items())
        raise ConfigError(f"cannot resume run {run_id} with a changed configuration ({details}); "
                          "use the original flags or start a new run.")
    log(f"resuming run {run_id} from {meta['path']} (epoch {meta['epoch']})")
    return run_id, meta["epoch"] + 1, meta["arrays"]["fixed_noise"]


def _evaluator(config: RunConfig, spec, dataset):
    from harness.metrics.evaluator import make_evaluator

    return make_evaluator(
        dataset_key=f"{dataset.source}:{dataset.name}:train:{spec.image_size}:{dataset.fingerprint}",
        reference_images=dataset.images, n_samples=config.eval_samples,
        backbone=config.backbone, inception_path=config.inception)


def _sample_grid(gan, noise: np.ndarray) -> np.ndarray:
    from harness.images import grid, to_uint8

    images = to_uint8(gan.sample(noise).numpy())
    return grid(images, cols=int(math.sqrt(len(images))))


def _pip_requirements() -> list[str]:
    import keras
    import tensorflow as tf

    return [f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}", "numpy", "pillow"]


def _check_writable(folder: str, flag: str) -> None:
    path = Path(folder)
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK) or not probe.is_dir():
        raise ConfigError(f"{flag} {folder!r} is not writable; pass a folder you can write to.")


def _restore_sigterm(previous) -> None:
    try:
        signal.signal(signal.SIGTERM, previous)
    except ValueError:  # not the main thread
        pass


def _sigterm_as_interrupt():
    """Treat SIGTERM (a pre-empted job) like Ctrl-C, so the run ends KILLED with a checkpoint."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        return signal.getsignal(signal.SIGTERM)
