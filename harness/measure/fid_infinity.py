"""FID extrapolated to infinitely many generated samples (FID∞).

Chong & Forsyth 2020, "Effectively Unbiased FID and Inception Score and where
to find them": FID measured on N generated samples is biased upwards by about
b / N, with b depending on the generator, so FIDs from different N, or from
two generators at one N, do not compare. Measuring FID at several N and
fitting FID(N) = FID∞ + b / N by least squares removes that bias: FID∞ is the
intercept at 1 / N = 0.

As the authors' code: each FID_N draws a fresh random subset of N generated
features and compares it with fixed real statistics. Unlike that code (15
sizes evenly spaced in N), the sizes here are evenly spaced in 1 / N, the
axis the line is fitted on, so the fit is not leveraged by the few small N.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import ConfigError
from harness.measure.fid import frechet_distance, statistics

# The paper extrapolates from 5,000 to 50,000 samples; this project's sets are
# far smaller, so by default the smallest N is this share of the fake set.
MIN_SHARE = 0.2


@dataclass(frozen=True)
class FidInfinity:
    """FID∞ and the line it comes from.

    value: the intercept of FID(N) = value + slope / N (FID∞).
    slope: the fitted b; the bias of FID at N samples is about slope / N.
    sizes: the sample sizes N, smallest first.
    fids: FID measured at each size.
    """

    value: float
    slope: float
    sizes: tuple[int, ...]
    fids: tuple[float, ...]


def sizes_even_in_inverse(min_size: int, max_size: int, points: int) -> tuple[int, ...]:
    """Return ``points`` whole sample sizes from ``min_size`` to ``max_size``, evenly spaced in 1 / N.

    Raises ConfigError when rounding to whole samples would repeat a size
    (the range is too narrow for that many points).
    """
    if points < 2 or not 2 <= min_size < max_size:
        raise ConfigError(
            f"FID∞ needs at least 2 sizes with 2 <= smallest < largest, got {points} sizes "
            f"from {min_size} to {max_size}; lower min_size or generate more samples"
        )
    sizes = tuple(int(n) for n in np.rint(1.0 / np.linspace(1.0 / min_size, 1.0 / max_size, points)))
    if len(set(sizes)) != points:
        raise ConfigError(
            f"FID∞: {points} sizes from {min_size} to {max_size} repeat after rounding to whole samples; "
            "use fewer points or a wider range"
        )
    return sizes


def subset_fid(features: np.ndarray, real_mu: np.ndarray, real_sigma: np.ndarray) -> float:
    """Return the FID of ``features`` (n, d) against real statistics (d,) and (d, d)."""
    mu, sigma = statistics(features)
    return frechet_distance(mu, sigma, real_mu, real_sigma)[0]


def fid_infinity(
    fake_features: np.ndarray,
    real_mu: np.ndarray,
    real_sigma: np.ndarray,
    *,
    sizes: tuple[int, ...] | list[int] | None = None,
    points: int = 10,
    min_size: int | None = None,
    seed: int = 0,
) -> FidInfinity:
    """Return FID∞ of generated features against real statistics.

    fake_features (n, d); real_mu (d,) and real_sigma (d, d) as from
    ``harness.measure.fid.statistics`` on the real features. ``sizes`` gives
    the N explicitly; otherwise ``points`` sizes evenly spaced in 1 / N from
    ``min_size`` (default a fifth of n) to n. ``seed`` fixes the subsets.
    Raises ConfigError when a size asks for more samples than were given.
    """
    fake = np.asarray(fake_features, dtype=np.float64)
    if fake.ndim != 2:
        raise ValueError(f"fake features must be (n, d), got shape {fake.shape}")
    n = len(fake)
    if sizes is None:
        if min_size is None:
            min_size = max(2, int(n * MIN_SHARE))
        if min_size >= n:
            raise ConfigError(
                f"FID∞ needs more than min_size={min_size} fake features, got {n}; "
                "generate more samples or lower min_size"
            )
        sizes = sizes_even_in_inverse(min_size, n, points)
    else:
        sizes = tuple(sorted(int(s) for s in sizes))
        if len(set(sizes)) < 2 or sizes[0] < 2:
            raise ConfigError(f"FID∞ needs at least 2 different sizes of 2 or more samples, got {sizes}")
        if sizes[-1] > n:
            raise ConfigError(
                f"FID∞ needs {sizes[-1]} fake features for its largest size, got {n}; "
                "generate more samples or pass smaller sizes"
            )

    rng = np.random.default_rng(seed)
    fids = tuple(subset_fid(fake[rng.choice(n, size, replace=False)], real_mu, real_sigma) for size in sizes)

    # Least squares of FID against 1 / N: [1, 1/N] @ [intercept, slope] ≈ FID.
    design = np.column_stack([np.ones(len(sizes)), 1.0 / np.asarray(sizes, dtype=np.float64)])
    (intercept, slope), *_ = np.linalg.lstsq(design, np.asarray(fids), rcond=None)
    return FidInfinity(value=float(intercept), slope=float(slope), sizes=sizes, fids=fids)
