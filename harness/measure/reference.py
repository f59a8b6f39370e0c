"""Reference statistics of real images, cached per dataset key and backbone.

The lead's dataset key names the source, class, split, image size and the
data fingerprint; the backbone's ``cache_id`` names the network and the
file's checksum. A cached entry holds the features (for KID) and their mean
and covariance (for FID), and is never recomputed once written.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.data import cache_root
from harness.measure import fid


@dataclass(frozen=True, eq=False)
class ReferenceStats:
    """Features of the real images and their FID statistics."""

    features: np.ndarray  # float32 (n_real, d)
    mu: np.ndarray  # float64 (d,)
    sigma: np.ndarray  # float64 (d, d)
    path: Path
    computed: bool  # False when read from the cache

    @property
    def n(self) -> int:
        return int(self.features.shape[0])


def cache_path(cache_dir: Path, backbone_id: str, dataset_key: str, n_images: int) -> Path:
    """<cache>/metrics/reference/<backbone id>/<readable key>-<digest>.npz"""
    key = f"{dataset_key}|n={n_images}"
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset_key)[:80]
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / "metrics" / "reference" / backbone_id / f"{readable}-{digest}.npz"


def reference_stats(backbone, dataset_key: str, images: np.ndarray, cache_dir: Path | None = None,
                    log=print) -> ReferenceStats:
    """Return the reference statistics of ``images``, from the cache when present."""
    path = cache_path(cache_dir or cache_root(), backbone.cache_id, dataset_key, len(images))
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            if int(stored["n"]) == len(images):
                return ReferenceStats(stored["features"], stored["mu"], stored["sigma"], path, computed=False)
    features, _ = backbone.features_and_probabilities(images)
    features = features.astype(np.float32)
    mu, sigma = fid.statistics(features)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    np.savez(partial, features=features, mu=mu, sigma=sigma, n=len(images), dataset_key=dataset_key,
             backbone=backbone.cache_id)
    os.replace(partial, path)
    log(f"reference statistics of {dataset_key} ({len(images)} images, {backbone.name}) cached in {path}")
    return ReferenceStats(features, mu, sigma, path, computed=True)
