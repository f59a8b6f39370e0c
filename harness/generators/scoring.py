"""Evaluate a finished run's generator later, logging into the same run: ``evaluate_run(run_id)``.

The run's stored config names its dataset, image size, image cap and seed;
the generator is the MLflow model the run logged. Scores are logged at the
run's last epoch. A run already evaluated with another backbone (name or
file) or sample count is refused: one run's fid must always mean one thing.
"""

from __future__ import annotations

from harness.config import DEFAULT_TRACKING_URI, RunConfig
from harness.data import load_dataset
from harness.errors import ConfigError, DataError, TrackingError
from harness.generators.sampling import load_generator
from harness.measure.evaluator import EVAL_PARAMS
from harness.measure.real_images import run_evaluator
from harness.store import tracking

# The flag that changes each evaluation param, for the refusal message.
_FLAGS = {"eval_backbone": "--backbone/--inception", "eval_backbone_md5": "--backbone/--inception",
          "eval_n_fake": "--eval-samples", "eval_n_real": "the run's data", "eval_reference": "the run's data",
          "eval_n_curve": "--eval-samples", "eval_prdc_k": "--eval-samples", "eval_fid_infinity": "the run's config"}


def evaluate_run(run_id: str, *, tracking_uri: str = DEFAULT_TRACKING_URI, eval_samples: int | None = None,
                 backbone: str = "auto", inception_path: str | None = None, log=print) -> dict[str, float]:
    """Score run ``run_id``'s logged generator and log the scores into that run.

    Returns the scores plus ``step`` (the epoch they were logged at). Raises
    ``TrackingError`` for a missing run or generator, ``DataError`` when the
    training data changed since the run, ``ConfigError`` for a conflicting
    backbone or sample count.
    """
    # --- the run, its config, its last epoch and the real images it trained on ----------
    run, config, dataset = run_and_data(run_id, tracking_uri)
    history = tracking.metric_histories(tracking_uri, [run_id], ("epoch_seconds",))[run_id]["epoch_seconds"]
    step = max((m.step for m in history), default=config.epochs)

    # --- the evaluator, refusing to mix backbones or sample counts in one run ----------
    n_samples = eval_samples or config.eval_samples
    evaluator = run_evaluator(config.dataset, training=dataset, n_samples=n_samples,
                              reference=config.eval_reference, backbone=backbone, inception_path=inception_path,
                              fid_infinity=config.fid_infinity, log=log)
    _check_same_evaluation(run_id, run.params, evaluator.params())
    if evaluator.warning:
        log(f"warning: {evaluator.warning}")

    # --- score the logged generator, log into the run ---------------------------------
    generator = load_generator(tracking_uri, tracking.generator_uri(tracking_uri, run_id))
    scores = evaluator.evaluate(generator, latent_dim=int(generator.input_shape[-1]), seed=config.seed)
    logger = tracking.RunLogger(tracking_uri, run_id)
    logger.log_params(evaluator.params())
    logger.log_metrics(scores, step=step)
    log(f"logged {', '.join(sorted(scores))} into run {run_id} at step {step}")
    return {**scores, "step": step}


def run_and_data(run_id: str, tracking_uri: str):
    """(the stored run, its resolved RunConfig, the same training images it trained on) of ``run_id``.

    Raises ``TrackingError`` for a missing run or config, ``DataError`` when
    the training data changed since the run.
    """
    tracking.ensure_store(tracking_uri)
    run = tracking.get_run(tracking_uri, run_id)
    try:
        config = RunConfig.from_dict(tracking.read_json_artifact(tracking_uri, run_id, "config.json")).resolved()
    except TrackingError:
        raise TrackingError(f"run {run_id} has no config.json artifact; it was not made by `harness run`.") from None
    dataset = load_dataset(config.dataset, image_size=config.image_size, max_images=config.max_images)
    logged = run.params.get("data_fingerprint")
    if logged and logged != dataset.fingerprint:
        raise DataError(f"the data of {config.dataset!r} changed since run {run_id} (fingerprint "
                        f"{logged} then, {dataset.fingerprint} now); its values would compare other images.")
    return run, config, dataset


def _check_same_evaluation(run_id: str, before: dict[str, str], now: dict[str, str]) -> None:
    """Refuse scores that would not compare with the run's earlier ones."""
    if "eval_backbone" in before and "eval_backbone_md5" not in before:
        raise ConfigError(f"run {run_id} was evaluated before backbone files were recorded, so it is unknown "
                          "whether its earlier values came from this backbone file; score a new run instead.")
    if "eval_backbone" in before and "eval_reference" not in before:
        before = {**before, "eval_reference": "train"}  # runs scored before held-out references were
    for key in EVAL_PARAMS:
        if key in before and before[key] != now[key]:
            raise ConfigError(f"run {run_id} was evaluated with {key}={before[key]}, not {now[key]}; pass "
                              f"{_FLAGS[key]} to match, so that the run's values stay comparable.")
