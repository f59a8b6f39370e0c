"""Fréchet distance between Gaussians fitted to features (FID when the features are Inception's).

Computed as the reference implementation (TTUR's ``fid.py``, Heusel et al. 2017):
statistics in float64 with ``np.cov`` (unbiased, ddof=1); ``scipy.linalg.sqrtm``
of ``sigma1 @ sigma2``; when that square root is not finite (a singular
product) retry with ``eps * I`` added to both covariances; discard the
imaginary part when the diagonal's is below 1e-3, else fail. ``FidInfo`` says
which of these happened, so a logged value can be traced to how it was made.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg

# The reference's offset for singular covariance products.
EPS = 1e-6
# The reference's tolerance on the imaginary part of the diagonal of sqrtm.
IMAG_ATOL = 1e-3


@dataclass(frozen=True)
class FidInfo:
    """How one Fréchet distance was computed.

    offset_applied: the product was singular and ``eps * I`` was added to both
        covariances (as the reference does); eps is the offset used.
    max_imag: the largest imaginary part discarded from the matrix square root.
    sqrtm_error: ||X @ X - A||_F / ||A||_F of the square root actually used.
    """

    offset_applied: bool
    eps: float
    max_imag: float
    sqrtm_error: float


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the mean (d,) and covariance (d, d) of ``features`` (n, d), in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be (n >= 2, d), got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = EPS,
) -> tuple[float, FidInfo]:
    """Return d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) and how it was computed.

    Raises ValueError on mismatched shapes, or when the square root keeps an
    imaginary diagonal above 1e-3 (a numerical failure, as in the reference).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )

    product = sigma1 @ sigma2
    with warnings.catch_warnings():
        # sqrtm warns on singular input; singularity is handled below.
        warnings.simplefilter("ignore", RuntimeWarning)
        covmean = linalg.sqrtm(product)
    offset_applied = not np.isfinite(covmean).all()
    if offset_applied:
        warnings.warn(
            f"FID: singular covariance product; adding {eps} to the diagonal of both covariances "
            "(as the reference implementation does)",
            RuntimeWarning,
            stacklevel=2,
        )
        offset = np.eye(sigma1.shape[0]) * eps
        product = (sigma1 + offset) @ (sigma2 + offset)
        covmean = linalg.sqrtm(product)

    max_imag = 0.0
    if np.iscomplexobj(covmean):
        max_imag = float(np.max(np.abs(covmean.imag)))
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=IMAG_ATOL):
            raise ValueError(f"FID: matrix square root has an imaginary component {max_imag:.3g}")
        covmean = covmean.real
    norm = np.linalg.norm(product)
    sqrtm_error = float(np.linalg.norm(covmean @ covmean - product) / norm) if norm > 0 else 0.0

    diff = mu1 - mu2
    distance = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    info = FidInfo(offset_applied=offset_applied, eps=eps, max_imag=max_imag, sqrtm_error=sqrtm_error)
    return float(distance), info
