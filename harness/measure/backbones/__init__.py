"""Feature networks for FID/KID/IS, chosen by name from one table.

``inception``: the reference 2015-12-05 Inception graph (backbones/inception.py),
used whenever its file is present. ``cifar10_classifier``: a compact CIFAR-10
classifier trained here (backbones/cifar_classifier.py), so the metrics work
offline; its values are only comparable with values of the same backbone file.

Every backbone exposes ``name``, ``identity`` (a ``provenance.BackboneIdentity``:
name, content md5, settings, test accuracy), ``cache_id``, ``feature_dim`` and
``features_and_probabilities(uint8 images) -> (features, probabilities)``.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.data import cache_root
from harness.errors import ConfigError, unknown_name
from harness.measure.backbones import cifar_classifier, inception

BACKBONES = ("auto", "inception", "cifar10_classifier")


def load_backbone(name: str = "auto", *, inception_path: str | Path | None = None,
                  data_root: Path | None = None, cache_dir: Path | None = None,
                  batch_size: int = 250):
    """Return the backbone ``name`` ("auto" prefers Inception when its file is found).

    Raises ``ConfigError`` naming what is missing and how to get it.
    """
    if name not in BACKBONES:
        raise unknown_name("backbone", name, BACKBONES)

    if name in ("auto", "inception"):
        graph = inception.find_graph(inception_path, data_root, cache_dir)
        if graph is None and name == "inception":
            graph = _download_if_possible(cache_dir)
        if graph is not None:
            return inception.InceptionBackbone(graph, batch_size=batch_size)
        if name == "inception":
            raise ConfigError(_inception_missing(inception.candidates(inception_path, data_root, cache_dir)))

    model = cifar_classifier.find_model(cache_dir)
    if model is not None:
        return cifar_classifier.CifarClassifierBackbone(model, batch_size=batch_size)
    looked = ", ".join(str(p) for p in inception.candidates(inception_path, data_root, cache_dir))
    if name == "cifar10_classifier":
        raise ConfigError(
            f"no offline CIFAR-10 backbone in {cifar_classifier.model_dir(cache_dir)}; train it with "
            "`python -m harness backbone train` (about 20 minutes on 2 CPU cores)."
        )
    raise ConfigError(
        "no backbone for FID/KID/IS: the Inception graph was not found (looked for "
        f"{looked}) and no offline CIFAR-10 backbone is cached in {cifar_classifier.model_dir(cache_dir)}. "
        "Run `python -m harness backbone train` (about 20 minutes on 2 CPU cores) or pass --inception PATH."
    )


def _download_if_possible(cache_dir: Path | None) -> Path | None:
    """Download the archive into the cache when a checksum to verify it is known."""
    if not (os.environ.get("HARNESS_INCEPTION_MD5") or inception.ARCHIVE_MD5):
        return None
    return inception.download((cache_dir or cache_root()) / "inception")


def _inception_missing(looked: list[Path]) -> str:
    return (
        f"the Inception graph was not found (looked for {', '.join(str(p) for p in looked)}). "
        f"Download {inception.URL}, check its md5, and pass --inception PATH or put it under "
        "<data root>/inception/; with HARNESS_INCEPTION_MD5 set to the published md5 it is downloaded "
        "and verified automatically. Or use --backbone cifar10_classifier."
    )
