"""Evaluate a finished run's generator later, logging into the same run: ``evaluate_run(run_id)``.

The run's stored config names its dataset, image size, image cap and seed;
the generator is the MLflow model the run logged. Scores are logged at the
run's last epoch. A run already evaluated with another backbone or sample
count is refused: one run's fid must always mean one thing.
"""

from __future__ import annotations

import json

from harness.config import DEFAULT_TRACKING_URI
from harness.errors import ConfigError, DataError, TrackingError


def evaluate_run(run_id: str, *, tracking_uri: str = DEFAULT_TRACKING_URI, eval_samples: int | None = None,
                 backbone: str = "auto", inception_path: str | None = None, log=print) -> dict[str, float]:
    """Score run ``run_id``'s logged generator and log the scores into that run.

    Returns the scores plus ``step`` (the epoch they were logged at). Raises
    ``TrackingError`` for a missing run or generator, ``DataError`` when the
    training data changed since the run, ``ConfigError`` for a conflicting
    backbone or sample count.
    """
    import mlflow

    from harness import tracking
    from harness.config import RunConfig
    from harness.data import load_dataset
    from harness.metrics.evaluator import make_evaluator
    from harness.sampling import load_generator

    # --- the run, its config and its last epoch -------------------------------------
    tracking.ensure_store(tracking_uri)
    client = tracking.client(tracking_uri)
    try:
        run = client.get_run(run_id)
    except Exception:
        raise TrackingError(f"run {run_id} is not in tracking store {tracking_uri!r}; pass the "
                            "--tracking-uri it was logged to.") from None
    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="config.json",
                                                   tracking_uri=tracking_uri)
        with open(path) as f:
            config = RunConfig.from_dict(json.load(f)).resolved()
    except ConfigError:
        raise
    except Exception:
        raise TrackingError(f"run {run_id} has no config.json artifact; it was not made by `harness run`.") from None
    history = client.get_metric_history(run_id, "epoch_seconds")
    step = max((m.step for m in history), default=config.epochs)

    # --- the same real images the run trained on -------------------------------------
    dataset = load_dataset(config.dataset, image_size=config.image_size, max_images=config.max_images)
    logged = run.data.params.get("data_fingerprint")
    if logged and logged != dataset.fingerprint:
        raise DataError(f"the data of {config.dataset!r} changed since run {run_id} (fingerprint "
                        f"{logged} then, {dataset.fingerprint} now); its FID would compare other images.")

    # --- the evaluator, refusing to mix backbones or sample counts in one run ----------
    n_samples = eval_samples or config.eval_samples
    evaluator = make_evaluator(
        dataset_key=f"{dataset.source}:{dataset.name}:train:{dataset.image_size}:{dataset.fingerprint}",
        reference_images=dataset.images, n_samples=n_samples, backbone=backbone,
        inception_path=inception_path, log=log)
    for key, value in evaluator.params().items():
        before = run.data.params.get(key)
        if before is not None and before != value:
            flag = {"eval_backbone": "--backbone", "eval_n_fake": "--eval-samples"}.get(key, key)
            raise ConfigError(f"run {run_id} was evaluated with {key}={before}, not {value}; pass "
                              f"{flag} to match, so that the run's values stay comparable.")

    # --- score the logged generator, log into the run ---------------------------------
    generator = load_generator(tracking_uri, tracking.generator_uri(tracking_uri, run_id))
    scores = evaluator.evaluate(generator, latent_dim=int(generator.input_shape[-1]), seed=config.seed)
    logger = tracking.RunLogger(tracking_uri, run_id)
    logger.log_params(evaluator.params())
    logger.log_metrics(scores, step=step)
    log(f"logged {', '.join(sorted(scores))} into run {run_id} at step {step}")
    return {**scores, "step": step}
