"""Images from a logged generator: pick the model, load the network, draw grids and strips.

A model is named by a run id (its logged generator), any MLflow model URI
(``models:/<model id>``, ``models:/NAME/<version>``, ``models:/NAME@alias``,
``runs:/ID/generator``) or as the best FINISHED run of an experiment by final
FID. Loading never runs code stored with the model: the Keras file is read
with ``safe_mode=True``. Image k of ``--seed S`` comes from seed ``S + k``
through ``serving.seed_noise``, so a seed gives the same image here and from
the model server.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from harness.data.registry import class_name
from harness.errors import ConfigError, TrackingError
from harness.measure.provenance import EVAL_PARAMS
from harness.store import generator_model as serving
from harness.store import tracking

# Keras is imported only to load a network: `register`, `serve` and `export` name a
# generator through this module first, and a bad name must fail without TensorFlow.

# Registry stages MLflow still accepts after ``models:/NAME/``; anything else
# that is not a version number is taken as an alias.
_STAGES = {"latest", "none", "staging", "production", "archived"}


# --- which model -----------------------------------------------------------------------
def lowest_fid_run(tracking_uri: str, experiment: str, backbone: str | None = None,
                   eval_samples: int | None = None) -> tuple[str, float]:
    """(run id, FID) of the FINISHED run in ``experiment`` with the lowest final ``fid``.

    FIDs from different backbones or sample counts are not comparable, so the
    candidates must share one evaluation key (``EVAL_PARAMS``); the optional
    filters pick one when they do not.
    """
    if not tracking.experiment_exists(tracking_uri, experiment):
        raise ConfigError(f"--best: no experiment {experiment!r} in {tracking.public(tracking_uri)}; train one "
                          f"with `python -m harness run --dataset {experiment} ...` or pass --experiment.")
    scored = []
    for r in tracking.find_runs(tracking_uri, experiment, status="FINISHED"):
        key = tuple(r.params.get(k) for k in EVAL_PARAMS)
        if (math.isfinite(r.metrics.get("fid", math.nan))
                and backbone in (None, r.params.get("eval_backbone"))
                and eval_samples in (None, _int(r.params.get("eval_n_fake")))):
            scored.append((r.metrics["fid"], r.start_time, r.run_id, key))
    if not scored:
        where = "".join(f", {flag} {value}" for flag, value in (("--eval-backbone", backbone),
                        ("--eval-samples", eval_samples)) if value is not None)
        raise ConfigError(f"--best: no FINISHED run in experiment {experiment!r}{where} has a final FID; "
                          "train with --eval-every K (e.g. 5), or pick a run with --run-id.")
    keys = sorted({key for *_, key in scored}, key=str)
    if len(keys) > 1:
        kinds = "; ".join(f"{dict(zip(EVAL_PARAMS, key))}: {sum(k == key for *_, k in scored)} run(s)"
                          for key in keys)
        raise ConfigError(f"--best: the final FIDs in {experiment!r} were computed differently ({kinds}) and "
                          "are not comparable; choose with --eval-backbone NAME and/or --eval-samples N.")
    fid, _, run_id, _ = min(scored)
    return run_id, fid


def _int(text: str | None) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def registry_uri(uri: str) -> str:
    """``models:/NAME/alias`` -> ``models:/NAME@alias``; versions, stages and other URIs unchanged."""
    if uri.startswith("models:/") and "@" not in uri:
        parts = uri[len("models:/"):].split("/")
        if len(parts) == 2 and not parts[1].isdigit() and parts[1].lower() not in _STAGES:
            return f"models:/{parts[0]}@{parts[1]}"
    return uri


def model_uri(tracking_uri: str, *, run_id: str | None = None, model: str | None = None,
              best: bool = False, dataset: str | None = None, experiment: str | None = None,
              backbone: str | None = None, eval_samples: int | None = None, log=print) -> str:
    """The MLflow URI of the generator named by exactly one of ``run_id``, ``model``, ``best``.

    ``best`` searches ``experiment`` (default: the one ``dataset`` trains into),
    optionally only FIDs from ``backbone`` and ``eval_samples`` generated images.
    """
    if sum((run_id is not None, model is not None, best)) != 1:
        raise ConfigError("name one generator: --run-id ID, --model URI or --best --dataset NAME.")
    if model is not None:
        if ":/" not in model:
            raise ConfigError(f"--model {model!r} is not an MLflow model URI; use e.g. "
                              "models:/NAME/1, models:/NAME@champion or runs:/RUN_ID/generator.")
        return registry_uri(model)
    if best:
        if not (dataset or experiment):
            raise ConfigError("--best needs --dataset NAME (or --experiment NAME) to know where to look.")
        experiment = experiment or class_name(dataset)
        run_id, fid = lowest_fid_run(tracking_uri, experiment, backbone, eval_samples)
        log(f"best run in {experiment!r} by final FID: {run_id} (fid {fid:.2f})")
    try:
        tracking.get_run(tracking_uri, run_id)
    except Exception:
        raise TrackingError(f"--run-id {run_id!r}: no such run in {tracking.public(tracking_uri)}; copy the id from the "
                            "MLflow UI or `run`'s output, or pass --tracking-uri.") from None
    return tracking.generator_uri(tracking_uri, run_id)


# --- loading ---------------------------------------------------------------------------
def load_generator(tracking_uri: str, uri: str):
    """The Keras generator stored in the MLflow model at ``uri``."""
    local, artifacts = tracking.download_model(tracking_uri, uri)
    if serving.KERAS_ARTIFACT in artifacts:
        keras_file = local / artifacts[serving.KERAS_ARTIFACT]["path"]
    else:  # a generator logged with the Keras flavour before the pyfunc wrapper
        found = sorted(local.rglob("*.keras"))
        if not found:
            raise TrackingError(f"model {uri!r} holds no Keras network (.keras file); it is not a "
                                "generator logged by `harness run`.")
        keras_file = found[0]
    import keras  # after the checks above: a bad URI fails without loading TensorFlow

    try:
        return keras.saving.load_model(keras_file, compile=False, safe_mode=True)
    except Exception as exc:
        raise TrackingError(f"model {uri!r}: {keras_file.name} does not load as a Keras model "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0]}).") from None


# --- images ----------------------------------------------------------------------------
def seeds_from(seed: int, n: int) -> list[int]:
    """The seeds of ``n`` images starting at ``seed`` (the server's rule for one row)."""
    if n < 1:
        raise ConfigError(f"--n {n} must be at least 1.")
    if seed < 0:
        raise ConfigError(f"--seed {seed} must be 0 or more.")
    return list(range(seed, seed + n))


def sample(generator, seeds: list[int]) -> np.ndarray:
    """uint8 (len(seeds), H, W, C) images, image i from ``seeds[i]``."""
    return serving.generate(generator, serving.seed_noise(seeds, int(generator.input_shape[-1])))


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation from ``a`` to ``b`` at fractions ``t``: (len(t), dim).

    Gaussian latents concentrate near a sphere, where a straight line would pass
    through the unlikely low-norm interior; nearly parallel vectors fall back to
    a straight line.
    """
    t = np.asarray(t, dtype=np.float64)[:, None]
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return ((1 - t) * a64 + t * b64).astype(np.float32)
    return ((np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)).astype(np.float32)


def interpolate(generator, pairs: list[tuple[int, int]], steps: int = 8) -> np.ndarray:
    """uint8 (len(pairs) * steps, H, W, C): for each (seed a, seed b) a strip from a to b."""
    if steps < 2:
        raise ConfigError(f"--steps {steps} must be at least 2 (the two ends).")
    for a, b in pairs:
        if a < 0 or b < 0:
            raise ConfigError(f"--interpolate {a} {b}: seeds must be 0 or more.")
    latent = int(generator.input_shape[-1])
    noise = np.concatenate([slerp(*serving.seed_noise([a, b], latent), np.linspace(0, 1, steps))
                            for a, b in pairs])
    return serving.generate(generator, noise)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 (H, W, C) image as a PNG, creating its folder; return the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"--out {str(path)!r} must end in .png.")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)
    return path


def save_each(images: np.ndarray, seeds: list[int], folder: str | Path) -> list[Path]:
    """Write each image as ``seed_<seed>.png`` in ``folder``; return the paths."""
    return [save_png(image, Path(folder) / f"seed_{seed:06d}.png") for image, seed in zip(images, seeds)]
