"""Train one variant on one dataset and log everything to MLflow: ``run(config)``.

The function reads top to bottom: resolve the config, load the data, check the
tracking store, build and compile the GAN, start (or resume) the MLflow run,
then one pass per epoch of train -> evaluate -> checkpoint -> log metrics ->
sample grid, and finally log the generator and end the run. The run always
ends FINISHED, FAILED (with the reason) or KILLED; only SIGKILL (or a power
cut) can leave it RUNNING, and ``--resume`` continues exactly those.

Why the checkpoint comes before the metrics: the checkpoint holds the epoch's
metrics, so a crash between the two writes is repaired on resume by logging
them from the checkpoint. The other order would log epoch k twice (once
before the crash, once after retraining it from checkpoint k - 1).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import harness
from harness.config import LOGGED, RunConfig
from harness.data import load_dataset
from harness.errors import ConfigError, TrainingFailed
from harness.images import enlarged, grid, to_uint8, viewable_scale
from harness.store import schema, tracking
from harness.train import checkpoints
from harness.train.progress import EpochLine, Timeline
from variants import canonical_name, resolve

# TensorFlow and Keras (and the modules that import them) are imported inside
# functions: commands that never train import this module and must start fast.
SAMPLE_GRID = 64  # images in each epoch's sample grid (8 x 8)


FAILURE_TAG = schema.FAILURE_CAUSE_TAG  # "environment": failed by the machine or the store, not by training
_runs_started: list = []  # runs this process started (the first one counts the imports)


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
    # --- resolve the config, the variant and the data -------------------------------
    # The first run of a process counts its start-up since the package was imported.
    timeline = Timeline(harness.STARTED if not _runs_started else time.perf_counter())
    _runs_started.append(timeline)
    timeline.mark("start-up (imports)")
    config = config.resolved()
    spec = resolve(config.variant).replace(**config.overrides)
    dataset = load_dataset(config.dataset, image_size=config.image_size,
                           max_images=config.max_images, min_images=config.batch_size)
    spec = spec.for_image(dataset.images.shape[1], dataset.images.shape[3])
    if config.width != 1.0:
        spec = spec.scaled(config.width)
    _check_writable(config.checkpoint_dir, "--checkpoint-dir")
    tracking.ensure_store(config.tracking_uri)
    if resume:
        _check_resume(config, resume, log)
    timeline.mark("data and checks")

    # --- model and data pipeline ----------------------------------------------------------
    import keras
    import tensorflow as tf

    from harness.data.pipeline import epoch_batches
    from harness.train.gan import GAN
    from harness.train.precision import resolve as resolve_precision

    # Before the seed is set: a first auto on this machine times both precisions.
    precision = resolve_precision(config.precision, spec, config.variant, config.batch_size, log)
    log(precision.line())
    if resume:
        _check_precision(config, resume, precision.name)
    keras.utils.set_random_seed(config.seed)
    gan = GAN(spec, seed=config.seed, precision=precision.name)
    gan.compile(jit_compile={"auto": "auto", "on": True, "off": False}[config.xla],
                steps_per_execution=config.steps_per_execution)
    steps = len(dataset.images) // config.batch_size
    images = tf.data.Dataset.from_tensor_slices(dataset.images)  # copied into TensorFlow once
    fixed_noise = np.random.default_rng(config.seed).standard_normal(
        (SAMPLE_GRID, spec.latent_dim)).astype(np.float32)
    evaluator = _evaluator(config, spec, dataset, log) if config.eval_every else None
    bar_on = sys.stderr.isatty() if config.progress is None else config.progress
    timeline.mark("model build (TensorFlow import included)")

    # --- tracking: a new run, or the one being resumed ----------------------------------
    # From the moment the run exists every exception or signal ends it (see _end_failed):
    # SIGTERM becomes Ctrl-C before it is created.
    previous_sigterm = _sigterm_as_interrupt()
    try:
        opened = _open_run(config, spec, dataset, gan, steps, resume, fixed_noise, log)
    except BaseException:
        _restore_sigterm(previous_sigterm)
        raise
    logger, held, logged, fixed_noise = opened.logger, opened.held, opened.logged, opened.fixed_noise
    first_epoch = opened.first_epoch
    run_id = logger.run_id
    ckpt_dir = Path(config.checkpoint_dir) / run_id

    def save_checkpoint(epoch: int, metrics: dict[str, float]) -> str:
        return str(checkpoints.save(ckpt_dir, epoch, gan, {"run_id": run_id, "config": config.to_dict(),
                                                          "metrics": metrics, "precision": precision.name},
                                    arrays={"fixed_noise": fixed_noise}, keep=config.keep_checkpoints))

    # --- train ----------------------------------------------------------------------
    result = RunResult(run_id=run_id, status="RUNNING", epochs_done=first_epoch - 1, checkpoint=opened.checkpoint)
    try:
        if not resume:
            logger.log_params(precision.params())
        log(f"run {run_id}: {config.variant} on {config.dataset} ({len(dataset.images)} images, "
            f"{config.epochs} epochs, batch {config.batch_size}) -> {tracking.public(config.tracking_uri)}")
        timeline.mark("tracking start")
        line = EpochLine(config.epochs, first_epoch, log)
        if held is None:
            held = checkpoints.lock(ckpt_dir)
        if evaluator is not None:
            logger.log_params(evaluator.params())
        tracking_seconds = 0.0
        for epoch in range(first_epoch, config.epochs + 1):
            start = time.perf_counter()
            metrics = _fit_epoch(gan, epoch_batches(images, config.batch_size, seed=config.seed, epoch=epoch),
                                 epoch, config, steps, bar_on, result)
            metrics["tracking_seconds"] = tracking_seconds
            timeline.mark("first epoch (tracing included)" if epoch == first_epoch else "training")
            if evaluator is not None and (epoch % config.eval_every == 0 or epoch == config.epochs):
                # Only the last evaluation is full (FID, IS at --eval-samples); the others are the
                # curve's cheap points (KID, PRDC at 1,000 samples). The last is the run's value.
                metrics.update(evaluator.evaluate(gan.float32_generator(), latent_dim=spec.latent_dim, seed=config.seed,
                                                  final=epoch == config.epochs))
                if epoch == config.epochs:  # the memorisation check, beside the run's final values
                    _log_nearest(logger, evaluator, gan, dataset, log)
                timeline.mark("evaluation")

            # --- save: checkpoint (with the metrics), then metrics, then sample grid --
            saving = time.perf_counter()
            result.checkpoint = save_checkpoint(epoch, metrics)
            result.epochs_done, result.metrics = epoch, metrics
            if epoch in logged:
                log(f"epoch {epoch} was logged before its checkpoint was lost; its first metrics are kept")
            else:
                logger.log_metrics(metrics, step=epoch)
            if epoch % config.sample_every == 0 or epoch == config.epochs:
                logger.log_png(_sample_grid(gan, fixed_noise), f"samples/epoch_{epoch:04d}.png")
            tracking_seconds = time.perf_counter() - saving
            timeline.mark("checkpoint, metrics, samples")
            result.history.append(metrics)
            line.report(epoch, metrics, time.perf_counter() - start)
            if on_epoch is not None:
                on_epoch(epoch, metrics)

        # --- finish: the generator as a model, the last checkpoint -------------------
        result.model_uri = "models:/" + logger.log_generator(gan.float32_generator(), _pip_requirements())
        if result.checkpoint:
            logger.log_file(result.checkpoint, "checkpoints")
        timeline.mark("final model and checkpoint")
        logger.log_json(timeline.phases, "timeline.json")
        logger.end("FINISHED")
        result.status = "FINISHED"
        log(timeline.line())
        if config.clean_checkpoints and result.checkpoint:
            # The last checkpoint is in MLflow now; `--resume` fetches it back if needed.
            checkpoints.unlock(held)
            held = None
            shutil.rmtree(ckpt_dir, ignore_errors=True)
            result.checkpoint = None
    except StopRun as stop:
        logger.set_tags({"stopped_reason": stop.reason})
        logger.end(stop.status)
        result.status, result.reason = stop.status, stop.reason
    except KeyboardInterrupt:
        # The last finished epoch's checkpoint is what resume needs: a mid-epoch
        # state saved under its name would train part of the next epoch twice.
        # Only a run stopped in its first epoch has none yet; it gets epoch 0.
        # A second Ctrl-C must not cut this short and leave the run RUNNING.
        with _signals_ignored():
            done = ckpt_dir / f"epoch-{result.epochs_done:04d}.npz"
            if not done.exists():
                save_checkpoint(result.epochs_done, result.metrics)
            result.checkpoint = str(done)
            logger.end("KILLED", reason=f"interrupted during epoch {result.epochs_done + 1}",
                       best_effort=True)
        result.status = "KILLED"
        raise
    except TrainingFailed as exc:
        logger.end("FAILED", reason=str(exc), best_effort=True)
        raise
    except BaseException as exc:
        _end_failed(logger, exc)
        if isinstance(exc, OSError):  # the machine's fault: the CLI says the run can go on
            exc.resumable_run = run_id
        raise
    finally:
        _restore_sigterm(previous_sigterm)
        checkpoints.unlock(held)
    return result


@dataclass
class _Opened:
    """The MLflow run being written and where training starts in it."""

    logger: Any
    first_epoch: int
    fixed_noise: np.ndarray
    held: Any = None  # the checkpoint folder's lock, when already taken
    logged: set[int] = field(default_factory=set)  # epochs whose metrics are in MLflow already
    checkpoint: str | None = None


def _open_run(config: RunConfig, spec, dataset, gan, steps: int, resume: str | None,
              fixed_noise: np.ndarray, log) -> _Opened:
    """Start a new MLflow run (params, data, config), or restore ``resume``'s checkpoint into
    ``gan`` and continue that run (logging its last epoch if a crash lost it)."""
    if resume:
        held, meta = _restore(config, resume, gan, log)
        opened = _Opened(None, meta["epoch"] + 1, meta["arrays"]["fixed_noise"], held, checkpoint=meta["path"])
        try:
            opened.logger = tracking.RunLogger.start(config.tracking_uri, config.experiment, run_id=resume)
            opened.logged = _repair_metrics(opened.logger, meta, gan, opened.fixed_noise, log)
        except BaseException as exc:
            if opened.logger is not None:
                _end_failed(opened.logger, exc)
            checkpoints.unlock(held)
            raise
        return opened
    tags = {"variant": config.variant, "dataset": config.dataset, "variant_canonical": canonical_name(spec),
            "data_source": dataset.source, **config.tags}
    logger = tracking.RunLogger.start(
        config.tracking_uri, config.experiment,
        run_name=config.run_name or f"{config.variant}-{config.class_name}-s{config.seed}", tags=tags)
    try:
        logger.log_params({**_params(config, spec, dataset), "steps_per_epoch": steps})
        logger.log_dataset(dataset.name, dataset.path, dataset.fingerprint, len(dataset.images))
        logger.log_json({k: v for k, v in config.to_dict().items() if k != "tracking_uri"}, "config.json")
    except BaseException as exc:
        _end_failed(logger, exc)
        raise
    return _Opened(logger, 1, fixed_noise)


def _end_failed(logger, exc: BaseException) -> None:
    """End a run that an exception or a signal stopped: KILLED for Ctrl-C or SIGTERM, else FAILED.

    Called from the moment the run exists: a run left active would be ended
    FINISHED by MLflow's exit handler, and then count as trained.
    """
    with _signals_ignored():  # a second Ctrl-C must not leave the run RUNNING
        if isinstance(exc, KeyboardInterrupt):
            logger.end("KILLED", reason="interrupted before training started", best_effort=True)
            return
        if not isinstance(exc, TrainingFailed):
            # Not the training's fault (a store, a disk, a permission): the next campaign retries it.
            with contextlib.suppress(Exception):
                logger.set_tags({FAILURE_TAG: "environment"})
        logger.end("FAILED", reason=f"{type(exc).__name__}: {exc}", best_effort=True)


def _fit_epoch(gan, batches, epoch: int, config: RunConfig, steps: int, bar_on: bool,
               result: RunResult) -> dict[str, float]:
    """Train one epoch; return its metrics. A NaN or inf loss raises TrainingFailed, naming
    the checkpoint a resume would start from."""
    from harness.train.callbacks import NonFiniteGuard, ProgressBar

    start = time.perf_counter()
    guard = NonFiniteGuard()
    bar = ProgressBar(epoch, config.epochs, steps, config.batch_size, enabled=bar_on)
    history = gan.fit(batches, epochs=1, verbose=0, shuffle=False, callbacks=[bar, guard])
    seconds = time.perf_counter() - start
    if guard.bad is not None:
        kept = (f"the last checkpoint, {result.checkpoint} (epoch {result.epochs_done}), is kept"
                if result.checkpoint else "no checkpoint was saved before it")
        raise TrainingFailed(f"{guard.bad} became {guard.value} at epoch {epoch}, step {guard.step}; "
                             f"{kept}. Try a lower learning rate.")
    metrics = {k: float(v[-1]) for k, v in history.history.items()}
    metrics.update(images_per_s=steps * config.batch_size / seconds, epoch_seconds=seconds)
    return metrics


def find_resumable(config: RunConfig) -> str:
    """The newest unfinished run of ``config``'s variant and dataset that has a checkpoint."""
    config = config.resolved()
    tracking.ensure_store(config.tracking_uri)  # fail fast, not after the client's retries
    runs = tracking.find_runs(config.tracking_uri, config.experiment, not_status="FINISHED", max_results=50,
                              tags={"variant": config.variant, "dataset": config.dataset})
    for found in runs:
        folder = Path(config.checkpoint_dir) / found.run_id
        # A locked folder belongs to a run another process is still training.
        if checkpoints.list_checkpoints(folder) and not checkpoints.is_locked(folder):
            return found.run_id
    raise ConfigError(
        f"--resume: no unfinished run of {config.variant} on {config.dataset} with a checkpoint in "
        f"{config.checkpoint_dir!r} (experiment {config.experiment!r}) that no other process is "
        "training; pass a run id or start a new run."
    )


def _params(config: RunConfig, spec, dataset) -> dict[str, Any]:
    """The run's params: the resolved variant, what changes training, and the data, each once."""
    # The fields' roles say which; precision is logged by run() as resolved (with the requested one).
    run = {k: v for k, v in config.to_dict().items() if k in LOGGED and k != "precision"}
    variant = {k: v for k, v in spec.to_params().items() if k != "name"}  # `variant` names it
    data = {k: v for k, v in dataset.params().items() if k != "data_image_size"}  # = image_size
    return {**variant, **run, **data}


def _check_resume(config: RunConfig, run_id: str, log) -> None:
    """Refuse to resume ``run_id`` before anything is built, naming what is wrong.

    Refused: no checkpoint, a run not in the store, a run another process is
    training, a changed configuration, a finished run with nothing left to train.
    A run whose local checkpoints were removed after it finished gets its
    logged last checkpoint back from MLflow.
    """
    folder = Path(config.checkpoint_dir) / run_id
    try:
        status = tracking.get_run(config.tracking_uri, run_id).status
    except Exception:
        raise ConfigError(f"--resume {run_id}: no such run in {tracking.public(config.tracking_uri)!r}; pass "
                          "the --tracking-uri it was logged to, or start a new run.") from None
    found = checkpoints.list_checkpoints(folder)
    if not found and tracking.fetch_checkpoint(config.tracking_uri, run_id, folder):
        log(f"fetched run {run_id}'s last checkpoint from MLflow into {folder}")
        found = checkpoints.list_checkpoints(folder)
    if not found:
        raise ConfigError(f"--resume {run_id}: no checkpoint in {folder}; pass the --checkpoint-dir the "
                          "run was trained with, or start a new run without --resume.")
    if checkpoints.is_locked(folder):
        checkpoints.unlock(checkpoints.lock(folder))  # raises RunBusy naming the owner
    meta = None
    for path in reversed(found):  # every checkpoint of a run holds the same config
        try:
            meta = checkpoints.read_meta(path)
            break
        except Exception:
            continue
    if meta is None:
        raise ConfigError(f"--resume {run_id}: no readable checkpoint in {folder}; start a new run "
                          "without --resume.")
    saved, current = RunConfig.from_dict(meta["config"]).training_fields(), config.training_fields()
    changed = {k: (v, current.get(k)) for k, v in saved.items() if current.get(k) != v}
    if changed:
        details = "; ".join(f"{k}: was {old!r}, now {new!r}" for k, (old, new) in changed.items())
        raise ConfigError(f"cannot resume run {run_id} with a changed configuration ({details}); "
                          "use the original flags or start a new run.")
    if status == "FINISHED" and meta["epoch"] >= config.epochs:
        raise ConfigError(f"--resume {run_id}: the run already FINISHED {meta['epoch']} epochs; pass "
                          f"--epochs above {meta['epoch']} to train it further.")


def _check_precision(config: RunConfig, run_id: str, precision: str) -> None:
    """Refuse to resume ``run_id`` in another precision than its checkpoints were trained in."""
    for path in reversed(checkpoints.list_checkpoints(Path(config.checkpoint_dir) / run_id)):
        try:
            saved = checkpoints.read_meta(path).get("precision", "float32")  # older checkpoints: float32
        except Exception:
            continue
        if saved != precision:
            raise ConfigError(f"cannot resume run {run_id} in {precision}: it was trained in {saved}; pass "
                              f"--precision {saved} to continue it, or start a new run.")
        return


def _restore(config: RunConfig, run_id: str, gan, log):
    """Lock ``run_id``'s folder and load its newest readable checkpoint into ``gan``.

    Returns (the held lock, the checkpoint's meta); corrupt checkpoints are
    skipped, saying so through ``log``.
    """
    folder = Path(config.checkpoint_dir) / run_id
    held = checkpoints.lock(folder)
    meta = checkpoints.latest_valid(folder, gan, warn=log, run_id=run_id)
    if meta is None:
        checkpoints.unlock(held)
        raise ConfigError(f"--resume {run_id}: no checkpoint in {folder} matches the model; start a "
                          "new run without --resume.")
    log(f"resuming run {run_id} from {meta['path']} (epoch {meta['epoch']})")
    return held, meta


def _repair_metrics(logger, meta: dict[str, Any], gan, fixed_noise: np.ndarray, log) -> set[int]:
    """Log the checkpoint's epoch if a crash came between its checkpoint and its metrics.

    Returns the epochs whose metrics are already logged, so none is logged twice.
    """
    logged = logger.logged_steps("d_loss")
    epoch, metrics = meta["epoch"], meta.get("metrics") or {}
    if epoch >= 1 and epoch not in logged and metrics:
        log(f"epoch {epoch} was checkpointed but not logged; logging it from the checkpoint")
        logger.log_metrics(metrics, step=epoch)
        logger.log_png(_sample_grid(gan, fixed_noise), f"samples/epoch_{epoch:04d}.png")
        logged.add(epoch)
    return logged


def _evaluator(config: RunConfig, spec, dataset, log):
    from harness.measure.real_images import run_evaluator

    # On first use without any backbone, the offline one is trained (announced) and cached.
    evaluator = run_evaluator(config.dataset, training=dataset, n_samples=config.eval_samples,
                              reference=config.eval_reference, backbone=config.backbone,
                              inception_path=config.inception, fid_infinity=config.fid_infinity,
                              train_backbone=True, tracking_uri=config.tracking_uri, log=log)
    if getattr(evaluator, "warning", None):
        log(f"warning: {evaluator.warning}")
    return evaluator


def _log_nearest(logger, evaluator, gan, dataset, log) -> None:
    """Log samples beside their nearest training images (features of the run's backbone)."""
    from harness.measure import memorisation
    from harness.measure.real_images import cache_key

    image, _ = memorisation.draw(evaluator.backbone, gan.float32_generator(), dataset.images,
                                 training_key=cache_key(dataset), log=log)
    logger.log_png(image, memorisation.NEAREST_ARTIFACT)


def _sample_grid(gan, noise: np.ndarray) -> np.ndarray:
    images = to_uint8(gan.sample(noise).numpy())
    return enlarged(grid(images, cols=int(math.sqrt(len(images)))), viewable_scale(images.shape[1]))


def _pip_requirements() -> list[str]:
    import keras
    import tensorflow as tf

    return [f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}", "numpy", "pillow"]


def _check_writable(folder: str, flag: str) -> None:
    """Create ``folder`` and write a probe file in it, so a bad location fails before training."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag} {folder!r} is not writable ({exc.strerror or exc}); pass a folder "
                          "you can write to.") from None


@contextlib.contextmanager
def _signals_ignored():
    """Ignore Ctrl-C and SIGTERM inside the block (main thread only)."""
    try:
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        previous = {}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
