"""Train the offline FID/KID/IS backbone: ``train_backbone()`` (what ``backbone train`` runs).

Trains the CIFAR-10 classifier of ``harness.measure.backbones.cifar_classifier``
on all ten classes, saves it (and a .json with its settings and test accuracy)
in the cache, where the evaluator finds it, and logs the training to the MLflow
experiment ``backbones``. The network, its augmentation, schedule and file
format live in the metrics package; running, saving and logging live here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from harness.config import DEFAULT_TRACKING_URI
from harness.data import load_cifar10
from harness.errors import DataError
from harness.measure.backbones.cifar_classifier import NAME, VERSION, augment, build_classifier, one_cycle, save
from harness.store import schema, tracking

# Keras and harness.data.pipeline (TensorFlow) are imported inside functions: the CLI
# imports this module, and `--help`, `variants` and `datasets` must not load them.

EXPERIMENT = schema.BACKBONE_EXPERIMENT


def train_backbone(*, epochs: int = 6, data_root: str | Path | None = None, cache_dir: Path | None = None,
                   tracking_uri: str = DEFAULT_TRACKING_URI, max_images: int | None = None,
                   channels: int = 16, batch_size: int = 256, peak_lr: float = 0.4, seed: int = 0,
                   jit_compile: bool = True, log=print) -> dict:
    """Train the backbone on CIFAR-10 (all ten classes), save it in the cache, log it to MLflow.

    ``channels`` is the first stage's channel count (the stages have c, 2c,
    4c, 8c; features are 8c values). ``max_images`` keeps only the first N
    training and test images (quick checks). ``jit_compile`` compiles the step
    with XLA (about twice as fast on CPU; tests turn it off to skip the
    compile). Returns {"accuracy", "seconds", "path", "run_id", "epochs"}; the
    accuracy is on the (possibly shortened) test split, without test-time
    augmentation.
    """
    import keras

    from harness.data.pipeline import array_batches

    # --- data ------------------------------------------------------------------------
    x_train, y_train = load_cifar10("train", data_root)
    x_test, y_test = load_cifar10("test", data_root)
    if max_images is not None:
        x_train, y_train = x_train[:max_images], y_train[:max_images]
        x_test, y_test = x_test[:max_images], y_test[:max_images]
    if len(x_train) < batch_size:
        raise DataError(f"--max-images {max_images} is fewer than one batch ({batch_size}) of training images.")
    pixels = x_train.reshape(-1, 3).astype(np.float64) / 255
    y_train_hot = np.eye(10, dtype=np.float32)[y_train]
    steps = len(x_train) // batch_size

    # --- model -----------------------------------------------------------------------
    keras.utils.set_random_seed(seed)
    model = build_classifier(channels, pixels.mean(0), pixels.std(0))
    model.compile(
        optimizer=keras.optimizers.SGD(one_cycle(peak_lr, epochs * steps), momentum=0.9, nesterov=True,
                                       weight_decay=5e-4 * batch_size / 512),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
        metrics=["accuracy"], jit_compile=jit_compile,
    )
    params = {"backbone": NAME, "channels": channels, "epochs": epochs, "batch_size": batch_size,
              "peak_lr": peak_lr, "label_smoothing": 0.2, "weight_decay": 5e-4, "seed": seed,
              "n_train": len(x_train), "n_test": len(x_test), "feature_dim": 8 * channels,
              "params": model.count_params()}
    tracking.ensure_store(tracking_uri)
    logger = tracking.RunLogger.start(tracking_uri, EXPERIMENT, run_name=NAME, tags={"backbone": NAME})
    logger.log_params(params)
    log(f"backbone {NAME}: {model.count_params()} parameters, {len(x_train)} training images, "
        f"{epochs} epochs -> {tracking.public(tracking_uri)} (experiment {EXPERIMENT!r}, run {logger.run_id})")

    # --- train loop: one fit per epoch on freshly augmented images ---------------------
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    accuracy = 0.0
    try:
        for epoch in range(1, epochs + 1):
            epoch_start = time.perf_counter()
            order = rng.permutation(len(x_train))[: steps * batch_size]
            batches = array_batches(augment(x_train[order], rng), y_train_hot[order], batch_size=batch_size)
            # Keras's bar (with its ETA) on a terminal; a log gets one line per epoch. The batches
            # are shuffled above: shuffle=False keeps Keras from warning that it cannot shuffle them.
            history = model.fit(batches, epochs=1, verbose=1 if sys.stderr.isatty() else 0, shuffle=False)
            accuracy = top1_accuracy(model, x_test, y_test)
            metrics = {"test_accuracy": accuracy, "train_accuracy": history.history["accuracy"][-1],
                       "train_loss": history.history["loss"][-1],
                       "epoch_seconds": time.perf_counter() - epoch_start}
            if not np.isfinite(metrics["train_loss"]):
                raise DataError(f"backbone training diverged: train_loss became {metrics['train_loss']} "
                                f"at epoch {epoch}; lower --peak-lr.")
            logger.log_metrics(metrics, step=epoch)
            left = (time.perf_counter() - start) / epoch * (epochs - epoch)
            log(f"  epoch {epoch}/{epochs}: test accuracy {accuracy:.4f}, train accuracy "
                f"{metrics['train_accuracy']:.4f}, {metrics['epoch_seconds']:.0f} s"
                + (f", about {left / 60:.0f} min left" if epoch < epochs else ""))
        seconds = time.perf_counter() - start

        # --- save in the cache and log the artifact -----------------------------------
        path = save(model, cache_dir, {"version": VERSION, "name": NAME, "test_accuracy": accuracy,
                                       "train_seconds": seconds, "mlflow_run_id": logger.run_id,
                                       "keras_version": keras.__version__, **params})
        logger.log_metrics({"final_test_accuracy": accuracy, "train_seconds": seconds}, step=epochs)
        logger.log_file(path, "backbone")
        logger.log_file(path.with_suffix(".json"), "backbone")
        logger.end("FINISHED")
    except BaseException as exc:
        logger.end("FAILED", reason=f"{type(exc).__name__}: {exc}")
        raise
    log(f"backbone {NAME}: test accuracy {accuracy:.4f} after {seconds:.0f} s, saved to {path}")
    return {"accuracy": accuracy, "seconds": seconds, "path": str(path), "run_id": logger.run_id,
            "epochs": epochs}


def top1_accuracy(model, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` (uint8 images -> logits) on ``images``."""
    from harness.data.pipeline import array_batches

    logits = model.predict(array_batches(images, batch_size=batch_size), verbose=0)
    return float(np.mean(logits.argmax(axis=1) == labels))


# The offline backbone's recipe takes about this long on 2 CPU cores (said before it starts).
FIRST_USE_MINUTES = 20


def ensure_backbone(name: str = "auto", *, inception_path: str | None = None, cache_dir: Path | None = None,
                    tracking_uri: str = DEFAULT_TRACKING_URI, log=print) -> None:
    """Make sure ``load_backbone(name, ...)`` finds a backbone, training the offline one on first use.

    When ``name`` is "auto" or "cifar10_classifier" and neither the Inception
    graph nor a cached offline classifier is found, the classifier is trained
    once with ``train_backbone``'s defaults (announced first, with each epoch's
    ETA) and cached for every later run. "inception" is left to
    ``load_backbone``, which downloads and checksum-verifies the graph when
    its md5 is known, or says how to get it.
    """
    from harness.measure.backbones import cifar_classifier, inception

    if name == "inception" or cifar_classifier.find_model(cache_dir) is not None:
        return
    if name == "auto" and inception.find_graph(inception_path, None, cache_dir) is not None:
        return
    log(f"no FID backbone found (no Inception graph, no cached offline classifier in "
        f"{cifar_classifier.model_dir(cache_dir)}): training the offline CIFAR-10 classifier once, about "
        f"{FIRST_USE_MINUTES} minutes on 2 CPU cores; later runs reuse it. Pass --eval-every 0 to skip "
        "evaluation, or --inception PATH to use the Inception graph.")
    train_backbone(cache_dir=cache_dir, tracking_uri=tracking_uri, log=log)
