"""FID, KID, IS, precision/recall and density/coverage of a generator: ``make_evaluator(...).evaluate(G)``.

The evaluator is built once per run: it picks the backbone, computes (or
reads from the cache) the reference images' statistics and, when the
reference is held out, the floor: the same metrics for real training images
against the reference at the same sample sizes (``fid_floor``, ``kid_floor``,
``precision_floor``, ...). Then each evaluation samples images in large
compiled batches, extracts their features and scores them.

Two kinds of evaluation. A quick one (``final=False``, for the curve over
training) samples ``curve_samples`` images (1,000) and gives KID and the four
PRDC values. The final one samples ``n_samples`` and adds FID and IS (and
FID∞ when asked); its PRDC uses its first ``curve_samples`` images, so every
point of a PRDC curve compares the same N. FID is only ever computed at
``n_samples``: FID is biased by an amount that depends on N, so FIDs at two
N do not share a column. KID is unbiased, so its quick and final values do.

Returned keys are the MLflow metric names: fid, kid, kid_std, is, is_std,
precision, recall, density, coverage, the ``*_floor`` of each, fid_infinity,
feature_img_s, eval_seconds. KID is the raw MMD^2 (not scaled by 1000).

``params()`` says how the values were made (the backbone's identity, the
reference split, the image counts, k; ``EVAL_PARAMS`` is the comparison key,
see ``provenance``) and ``warning`` says when the backbone is too weak for
them to mean much.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from harness.config import EVAL_CURVE_SAMPLES as CURVE_SAMPLES  # a quick evaluation's and every PRDC's N
from harness.errors import ConfigError
from harness.measure import fid, inception_score, kid, prdc
from harness.measure.backbones import load_backbone
from harness.measure.fid_infinity import fid_infinity
from harness.measure.provenance import EVAL_PARAMS, BackboneIdentity, quality_warning
from harness.measure.reference import ReferenceStats, reference_stats

__all__ = ["CURVE_SAMPLES", "EVAL_PARAMS", "Evaluator", "make_evaluator"]

SAMPLE_BATCH = 500  # generator images per compiled call
K_FIDELITY = 3  # precision and recall (Kynkäänniemi et al. 2019)
K_DENSITY = 5  # density and coverage (Naeem et al. 2020)
PRDC_KEYS = ("precision", "recall", "density", "coverage")
# Said beside IS wherever it is logged: for one class it has no better direction.
IS_CAVEAT = ("IS rewards spreading samples over the backbone's classes; for one class of images that is not "
             "quality, so it is reported but never ranked")


def make_evaluator(*, dataset_key: str, reference_images: np.ndarray, n_samples: int,
                   backbone: str = "auto", inception_path: str | None = None,
                   cache_dir: Path | None = None, batch_size: int = 250, log=print,
                   reference_split: str = "train", floor_images: np.ndarray | None = None,
                   floor_key: str | None = None, curve_samples: int | None = None,
                   with_fid_infinity: bool = False) -> Evaluator:
    """Build an evaluator for generators of the class whose reference images are ``reference_images``.

    reference_images: uint8 (N, S, S, C), C = 1 or 3 (one channel is replicated).
    dataset_key: identifies those images in the reference-statistics cache.
    backbone: "auto" (Inception if its graph is found, else the offline CIFAR-10
    backbone), "inception" or "cifar10_classifier".
    reference_split: the split ``reference_images`` come from, "test" or "train" (logged as ``eval_reference``).
    floor_images, floor_key: real training images (and their cache key) for the
    floors, held out from the reference; None: no floor.
    curve_samples: generated images of a quick evaluation and of PRDC
    (default ``min(CURVE_SAMPLES, n_samples)``).
    with_fid_infinity: the final evaluation also gives ``fid_infinity``.
    Raises ``ConfigError`` when the backbone is missing or the inputs are
    unusable, e.g. more samples than there are training images for the floor.
    """
    images = np.asarray(reference_images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ConfigError(f"reference images must be uint8 (N, S, S, 1 or 3), got {images.dtype} {images.shape}.")
    if len(images) < 2 or n_samples < 10:
        raise ConfigError(f"evaluation needs at least 2 real images and 10 samples (IS uses 10 splits); "
                          f"got {len(images)} real and --eval-samples {n_samples}.")
    curve = min(CURVE_SAMPLES, n_samples) if curve_samples is None else curve_samples
    prdc_on = min(curve, len(images)) > max(K_FIDELITY, K_DENSITY)
    if floor_images is not None and len(floor_images) < n_samples:
        # Capping would compare the samples and the floor at different N; say so instead.
        raise ConfigError(f"--eval-samples {n_samples} is more than the {len(floor_images)} training images the "
                          f"floor compares at the same size; use --eval-samples {len(floor_images)} or fewer.")
    net = load_backbone(backbone, inception_path=inception_path, cache_dir=cache_dir, batch_size=batch_size)
    start = time.perf_counter()
    reference = reference_stats(net, dataset_key, images, cache_dir, log=log)
    if reference.computed:
        seconds = time.perf_counter() - start
        log(f"features of {len(images)} real images in {seconds:.1f} s ({len(images) / seconds:.0f} img/s)")
    evaluator = Evaluator(net, reference, n_samples, log=log, reference_split=reference_split,
                          curve_samples=curve, with_prdc=prdc_on, with_fid_infinity=with_fid_infinity)
    if floor_images is not None:
        floor = reference_stats(net, floor_key or f"{dataset_key}:floor", np.asarray(floor_images)[:n_samples],
                                cache_dir, log=log)
        evaluator.floors = cached_floors(evaluator, floor)
        log("floor (real training images against the reference): " + ", ".join(
            f"{k.removesuffix('_floor')} {v:.4g}" for k, v in evaluator.floors.items()))
    return evaluator


class Evaluator:
    """Scores generators (or image arrays) against one class's reference statistics."""

    def __init__(self, backbone, reference: ReferenceStats, n_samples: int, log=print, *,
                 reference_split: str = "train", curve_samples: int | None = None, with_prdc: bool = False,
                 with_fid_infinity: bool = False):
        self.backbone = backbone
        self.backbone_name: str = backbone.name
        self.identity: BackboneIdentity = backbone.identity
        self.reference = reference
        self.n_samples = n_samples
        self.reference_split = reference_split
        self.curve_samples = min(curve_samples or n_samples, n_samples)
        self.with_prdc = with_prdc
        self.with_fid_infinity = with_fid_infinity
        self.floors: dict[str, float] = {}  # fid_floor, kid_floor, ...: logged with every evaluation
        self.log = log
        self.last_fid_info: fid.FidInfo | None = None
        self._sampler = None  # (generator, compiled function), reused across epochs

    def params(self) -> dict[str, str]:
        """What to log once per run, so every value says how it was computed.

        The backbone's identity (``eval_backbone``, ``eval_backbone_md5``,
        ``eval_backbone_settings``, for the offline classifier
        ``eval_backbone_test_acc``), ``eval_n_real``, ``eval_n_fake``,
        ``eval_reference`` (the split), ``eval_n_curve`` (samples of quick
        evaluations and PRDC), ``eval_prdc_k`` ("3/5": precision-recall /
        density-coverage, or "off"), ``eval_fid_infinity`` (on/off), ``eval_floor``.
        """
        out = {**self.identity.params(), "eval_n_real": str(self.reference.n), "eval_n_fake": str(self.n_samples)}
        out.update(eval_reference=self.reference_split, eval_n_curve=str(self.curve_samples),
                   eval_prdc_k=f"{K_FIDELITY}/{K_DENSITY}" if self.with_prdc else "off",
                   eval_fid_infinity="on" if self.with_fid_infinity else "off",
                   eval_floor="train images" if self.floors else "none")
        return out

    @property
    def warning(self) -> str | None:
        """Why this backbone's values say little (offline classifier under the floor), or None."""
        return quality_warning(self.params())

    def evaluate(self, generator, *, latent_dim: int, seed: int, final: bool = True) -> dict[str, float]:
        """Sample images from ``generator`` (noise ~ N(0, 1), seeded) and score them.

        final: ``n_samples`` images, every metric; else ``curve_samples``
        images, KID and PRDC only (a point of the curve over training).
        """
        start = time.perf_counter()
        count = self.n_samples if final else self.curve_samples
        images = self.sample(generator, latent_dim=latent_dim, seed=seed, count=count)
        scores = self.score(images, seed=seed) if final else self.score_quick(images, seed=seed)
        scores["eval_seconds"] = time.perf_counter() - start
        return scores

    def sample(self, generator, *, latent_dim: int, seed: int, count: int | None = None) -> np.ndarray:
        """Return ``count`` (default ``n_samples``) uint8 images, made in fixed-size compiled batches."""
        count = self.n_samples if count is None else count
        if self._sampler is None or self._sampler[0] is not generator:
            @tf.function(input_signature=[tf.TensorSpec([SAMPLE_BATCH, latent_dim], tf.float32)])
            def to_uint8(z):
                x = generator(z, training=False)
                return tf.cast(tf.clip_by_value(tf.round((tf.cast(x, tf.float32) + 1.0) * 127.5), 0, 255), tf.uint8)

            self._sampler = (generator, to_uint8)
        to_uint8 = self._sampler[1]
        noise = np.random.default_rng(seed).standard_normal((count, latent_dim)).astype(np.float32)
        batches = []
        for begin in range(0, count, SAMPLE_BATCH):
            z = noise[begin:begin + SAMPLE_BATCH]
            # Pad the last batch so that one traced shape serves every call.
            padded = np.concatenate([z, np.zeros((SAMPLE_BATCH - len(z), latent_dim), np.float32)])
            batches.append(to_uint8(padded).numpy()[:len(z)])
        return np.concatenate(batches)

    def score(self, images: np.ndarray, *, seed: int = 0) -> dict[str, float]:
        """FID, KID, IS and PRDC of uint8 ``images`` against the reference, the floors, the throughput."""
        start = time.perf_counter()
        features, probs = self.backbone.features_and_probabilities(images)
        seconds = time.perf_counter() - start
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            value, self.last_fid_info = fid.frechet_distance(self.reference.mu, self.reference.sigma,
                                                             *fid.statistics(features))
        for warning in caught:  # say it when the reference offset was needed
            self.log(f"warning: {warning.message}")
        kid_mean, kid_std = kid.kernel_inception_distance(self.reference.features, features, seed=seed)
        is_mean, is_std = inception_score.inception_score(probs, splits=10)
        scores = {"fid": value, "kid": kid_mean, "kid_std": kid_std, "is": is_mean, "is_std": is_std,
                  "feature_img_s": len(images) / seconds}
        scores.update(self._prdc(features[:self.curve_samples]))
        if self.with_fid_infinity:
            scores["fid_infinity"] = fid_infinity(features, self.reference.mu, self.reference.sigma,
                                                  seed=seed).value
        scores.update(self.floors)
        self.log(f"eval [{self.backbone_name}, {self.reference.n} real / {len(images)} fake]: "
                 f"FID {value:.2f}  KID {_kid_text(kid_mean, kid_std)}  IS {is_mean:.2f} ± {is_std:.2f}  "
                 + self._prdc_text(scores) + f"({scores['feature_img_s']:.0f} img/s)")
        return scores

    def score_quick(self, images: np.ndarray, *, seed: int = 0) -> dict[str, float]:
        """KID and PRDC of uint8 ``images`` against the reference (no FID: its bias depends on N), the floors."""
        features, _ = self.backbone.features_and_probabilities(images)
        kid_mean, kid_std = kid.kernel_inception_distance(self.reference.features, features, seed=seed)
        scores = {"kid": kid_mean, "kid_std": kid_std, **self._prdc(features[:self.curve_samples])}
        scores.update({k: v for k, v in self.floors.items() if not k.startswith(("fid", "is"))})
        self.log(f"eval [{self.backbone_name}, {self.reference.n} real / {len(images)} fake]: "
                 f"KID {_kid_text(kid_mean, kid_std)}  " + self._prdc_text(scores))
        return scores

    def floor_values(self, real: ReferenceStats) -> dict[str, float]:
        """The metrics of real images (their cached statistics) against the reference, keyed ``*_floor``."""
        value, _ = fid.frechet_distance(self.reference.mu, self.reference.sigma, real.mu, real.sigma)
        kid_mean, kid_std = kid.kernel_inception_distance(self.reference.features, real.features, seed=0)
        floors = {"fid_floor": value, "kid_floor": kid_mean, "kid_std_floor": kid_std}
        floors.update({f"{k}_floor": v for k, v in self._prdc(real.features[:self.curve_samples]).items()})
        return floors

    def _prdc(self, features: np.ndarray) -> dict[str, float]:
        if not self.with_prdc:
            return {}
        return prdc.prdc(self.reference.features, features, k_fidelity=K_FIDELITY, k_density=K_DENSITY)

    @staticmethod
    def _prdc_text(scores: dict[str, float]) -> str:
        if "precision" not in scores:
            return ""
        return (f"P {scores['precision']:.3f}  R {scores['recall']:.3f}  D {scores['density']:.3f}  "
                f"C {scores['coverage']:.3f}  ")


def _kid_text(mean: float, std: float) -> str:
    # With both sets no larger than a subset, every subset is the same pair of sets: a std of 0
    # then says nothing about the spread, so none is shown.
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std > 0 else " (one subset: no spread)")


def cached_floors(evaluator: Evaluator, real: ReferenceStats) -> dict[str, float]:
    """``evaluator.floor_values(real)``, read from beside the real images' cached features when an
    earlier run computed them: the same reference and real features give the same floors, and a
    5,000-against-1,000 KID costs seconds at every run's start otherwise."""
    key = json.dumps([evaluator.reference.path.name, real.n, evaluator.curve_samples, evaluator.with_prdc,
                      K_FIDELITY, K_DENSITY])
    path = real.path.with_name(f"{real.path.stem}.floors-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json")
    if path.is_file() and not real.computed and not evaluator.reference.computed:
        try:
            return {k: float(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            pass  # a damaged file is computed again and replaced
    floors = evaluator.floor_values(real)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(floors))
    os.replace(partial, path)
    return floors
