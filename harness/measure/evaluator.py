"""FID, KID and IS of a generator against a class's real images: ``make_evaluator(...).evaluate(G)``.

The evaluator is built once per run: it picks the backbone, computes (or
reads from the cache) the real images' reference statistics, then at each
evaluation samples ``n_samples`` images in large compiled batches, extracts
their features and scores them. Returned keys are the MLflow metric names:
fid, kid, kid_std, is, is_std, feature_img_s, eval_seconds. KID is the raw
MMD^2 (not scaled by 1000).

``params()`` says how the values were made (the backbone's identity and the
image counts; ``EVAL_PARAMS`` is the comparison key, see ``provenance``) and
``warning`` says when the backbone is too weak for them to mean much.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from harness.errors import ConfigError
from harness.measure import fid, inception_score, kid
from harness.measure.backbones import load_backbone
from harness.measure.provenance import EVAL_PARAMS, BackboneIdentity, quality_warning
from harness.measure.reference import ReferenceStats, reference_stats

__all__ = ["EVAL_PARAMS", "Evaluator", "make_evaluator"]

SAMPLE_BATCH = 500  # generator images per compiled call


def make_evaluator(*, dataset_key: str, reference_images: np.ndarray, n_samples: int,
                   backbone: str = "auto", inception_path: str | None = None,
                   cache_dir: Path | None = None, batch_size: int = 250, log=print) -> Evaluator:
    """Build an evaluator for generators of the class whose real images are ``reference_images``.

    reference_images: uint8 (N, S, S, C), C = 1 or 3 (one channel is replicated).
    dataset_key: identifies those images in the reference-statistics cache.
    backbone: "auto" (Inception if its graph is found, else the offline CIFAR-10
    backbone), "inception" or "cifar10_classifier". Raises ``ConfigError`` when
    the backbone is missing or the inputs are unusable.
    """
    images = np.asarray(reference_images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ConfigError(f"reference images must be uint8 (N, S, S, 1 or 3), got {images.dtype} {images.shape}.")
    if len(images) < 2 or n_samples < 10:
        raise ConfigError(f"evaluation needs at least 2 real images and 10 samples (IS uses 10 splits); "
                          f"got {len(images)} real and --eval-samples {n_samples}.")
    net = load_backbone(backbone, inception_path=inception_path, cache_dir=cache_dir, batch_size=batch_size)
    start = time.perf_counter()
    reference = reference_stats(net, dataset_key, images, cache_dir, log=log)
    if reference.computed:
        seconds = time.perf_counter() - start
        log(f"features of {len(images)} real images in {seconds:.1f} s ({len(images) / seconds:.0f} img/s)")
    return Evaluator(net, reference, n_samples, log=log)


class Evaluator:
    """Scores generators (or image arrays) against one class's reference statistics."""

    def __init__(self, backbone, reference: ReferenceStats, n_samples: int, log=print):
        self.backbone = backbone
        self.backbone_name: str = backbone.name
        self.identity: BackboneIdentity = backbone.identity
        self.reference = reference
        self.n_samples = n_samples
        self.log = log
        self.last_fid_info: fid.FidInfo | None = None
        self._sampler = None  # (generator, compiled function), reused across epochs

    def params(self) -> dict[str, str]:
        """What to log once per run, so every value says how it was computed.

        The backbone's identity (``eval_backbone``, ``eval_backbone_md5``,
        ``eval_backbone_settings``, for the offline classifier
        ``eval_backbone_test_acc``) and ``eval_n_real``, ``eval_n_fake``.
        """
        return {**self.identity.params(), "eval_n_real": str(self.reference.n), "eval_n_fake": str(self.n_samples)}

    @property
    def warning(self) -> str | None:
        """Why this backbone's values say little (offline classifier under the floor), or None."""
        return quality_warning(self.params())

    def evaluate(self, generator, *, latent_dim: int, seed: int) -> dict[str, float]:
        """Sample ``n_samples`` images from ``generator`` (noise ~ N(0, 1), seeded) and score them."""
        start = time.perf_counter()
        images = self.sample(generator, latent_dim=latent_dim, seed=seed)
        scores = self.score(images, seed=seed)
        scores["eval_seconds"] = time.perf_counter() - start
        return scores

    def sample(self, generator, *, latent_dim: int, seed: int) -> np.ndarray:
        """Return ``n_samples`` uint8 images, made in fixed-size compiled batches."""
        if self._sampler is None or self._sampler[0] is not generator:
            @tf.function(input_signature=[tf.TensorSpec([SAMPLE_BATCH, latent_dim], tf.float32)])
            def to_uint8(z):
                x = generator(z, training=False)
                return tf.cast(tf.clip_by_value(tf.round((tf.cast(x, tf.float32) + 1.0) * 127.5), 0, 255), tf.uint8)

            self._sampler = (generator, to_uint8)
        to_uint8 = self._sampler[1]
        noise = np.random.default_rng(seed).standard_normal((self.n_samples, latent_dim)).astype(np.float32)
        batches = []
        for begin in range(0, self.n_samples, SAMPLE_BATCH):
            z = noise[begin:begin + SAMPLE_BATCH]
            # Pad the last batch so that one traced shape serves every call.
            padded = np.concatenate([z, np.zeros((SAMPLE_BATCH - len(z), latent_dim), np.float32)])
            batches.append(to_uint8(padded).numpy()[:len(z)])
        return np.concatenate(batches)

    def score(self, images: np.ndarray, *, seed: int = 0) -> dict[str, float]:
        """FID, KID and IS of uint8 ``images`` against the reference, and the feature throughput."""
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
        self.log(f"eval [{self.backbone_name}, {self.reference.n} real / {len(images)} fake]: "
                 f"FID {value:.2f}  KID {kid_mean:.4f} ± {kid_std:.4f}  IS {is_mean:.2f} ± {is_std:.2f}  "
                 f"({scores['feature_img_s']:.0f} img/s)")
        return scores
