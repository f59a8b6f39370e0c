"""Score a generator file (``.h5``, ``.keras``) into MLflow: ``evaluate_file(path, dataset=...)``.

The file is loaded and checked by ``harness.generators.files``, then scored with the
evaluator, backbone and defaults (``eval_samples``, the noise seed) that runs
use, so its FID/KID/IS compare with runs' values of the same backbone file
and counts. The scores go into a new MLflow run in the dataset's experiment,
tagged ``source=external``, with the file's name, md5, format and output range
as params and the file itself as an artifact (``external/``). The run has no
training params and no ``variant`` tag: reports never take it for a trained
run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from harness.config import DEFAULT_TRACKING_URI, RunConfig
from harness.data import load_dataset
from harness.data.registry import class_name
from harness.errors import ConfigError
from harness.generators import files as external
from harness.measure.evaluator import make_evaluator
from harness.store import tracking

SOURCE_TAG = "source"
SOURCE = "external"
# What a run evaluates with by default, so that a file's values compare with runs'.
RUN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig)}


def evaluate_file(path: str | Path, *, dataset: str | None, tracking_uri: str = DEFAULT_TRACKING_URI,
                  experiment: str | None = None, eval_samples: int | None = None, seed: int | None = None,
                  backbone: str = "auto", inception_path: str | None = None, output_range: str = "auto",
                  log=print) -> dict[str, Any]:
    """Score the generator file ``path`` against ``dataset``'s training images; log a new run.

    ``experiment`` defaults to the dataset's class, ``eval_samples`` and
    ``seed`` to a run's defaults. Returns the scores plus ``run_id``. Raises
    ``ConfigError`` for a bad file (see ``harness.generators.files.load``), a missing
    dataset or one whose images have other channels than the generator's.
    """
    if not dataset:
        raise ConfigError("--generator needs --dataset NAME: the real images to compare it with "
                          "(e.g. --dataset horses).")
    eval_samples = RUN_DEFAULTS["eval_samples"] if eval_samples is None else eval_samples
    seed = RUN_DEFAULTS["seed"] if seed is None else seed
    experiment = experiment or class_name(dataset)

    # --- the file, the same real images a run of this dataset trains on -------------------
    generator = external.load(path, output_range)
    data = load_dataset(dataset, image_size=generator.image_size)
    if data.channels != generator.channels:
        raise ConfigError(f"--generator {str(path)!r} makes {generator.channels}-channel images, but "
                          f"{dataset!r} has {data.channels}-channel images; score it against a dataset "
                          "of its own kind.")
    tracking.ensure_store(tracking_uri)  # a bad store fails before the scoring, not after

    # --- score with the runs' evaluator -----------------------------------------------------
    evaluator = make_evaluator(
        dataset_key=f"{data.source}:{data.name}:train:{data.image_size}:{data.fingerprint}",
        reference_images=data.images, n_samples=eval_samples, backbone=backbone,
        inception_path=inception_path, log=log)
    if evaluator.warning:
        log(f"warning: {evaluator.warning}")
    scores = evaluator.evaluate(generator.model, latent_dim=generator.latent_dim, seed=seed)

    # --- a new run, marked as a file's ------------------------------------------------------
    tags = {SOURCE_TAG: SOURCE, "dataset": dataset, "data_source": data.source,
            "external_file": generator.path.name}
    logger = tracking.RunLogger.start(tracking_uri, experiment, run_name=f"external-{generator.path.name}",
                                      tags=tags)
    try:
        data_params = {k: v for k, v in data.params().items() if k != "data_image_size"}  # = image_size
        logger.log_params({**generator.params(), **data_params, **evaluator.params(), "eval_seed": seed})
        logger.log_metrics(scores, step=0)
        logger.log_file(generator.path, "external")
        logger.end("FINISHED")
    except BaseException as exc:
        logger.end("FAILED", reason=f"{type(exc).__name__}: {exc}", best_effort=True)
        raise
    log(f"logged {', '.join(sorted(scores))} of {generator.path.name} into run {logger.run_id} "
        f"(experiment {experiment!r}, tag {SOURCE_TAG}={SOURCE})")
    return {**scores, "run_id": logger.run_id}
