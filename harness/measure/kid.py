"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs").

As the reference implementations (MMD-GAN's ``compute_scores.py``,
torch-fidelity, StyleGAN2-ADA): the unbiased estimator of MMD^2 with the
cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random
subsets drawn without replacement (100 subsets of up to 1000 of each set);
the reported spread is the standard deviation over subsets. Unbiased, so it
suits small classes where FID's bias dominates; it can be slightly negative
when the two sets come from the same distribution.
"""

from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return the (len(x), len(y)) matrix of (x.y / d + 1)^3, in float64."""
    gram = x @ y.T
    gram /= x.shape[1]
    gram += 1.0
    # In place and by multiplication: ``** 3`` calls pow per element, twice as slow.
    return gram * gram * gram


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between equally sized samples x and y (m, d).

    Within-set kernel sums drop the diagonal (m (m - 1) pairs); the cross
    term keeps all m^2 pairs, as the reference estimator does.
    """
    m = x.shape[0]
    k_xx = polynomial_kernel(x, x)
    k_yy = polynomial_kernel(y, y)
    k_xy = polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    real_feats: np.ndarray,
    fake_feats: np.ndarray,
    *,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Return the mean and standard deviation of the unbiased MMD^2 over subsets.

    real_feats (n_real, d), fake_feats (n_fake, d): features of the two sets.
    Each subset takes m = min(n_real, n_fake, max_subset_size) rows of each set
    without replacement; ``seed`` fixes the draws. When neither set is larger
    than m every subset is a whole set (the estimator ignores order), so the
    std is 0 and says nothing about the spread.
    """
    real = np.asarray(real_feats, dtype=np.float64)
    fake = np.asarray(fake_feats, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be (n, d) with equal d, got {real.shape} and {fake.shape}")
    m = min(len(real), len(fake), max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples in each set, got {len(real)} and {len(fake)}")

    if len(real) == len(fake) == m:
        # Every subset is both whole sets reordered, and the estimator ignores order: one value.
        return mmd2_unbiased(fake, real), 0.0
    # A set used whole by every subset (the 1,000 test images of a class against 5,000
    # samples) has its kernel terms computed once, not once per subset: within the set, a
    # sum; across, each row's sum against it. The draws are those of the plain loop.
    whole_real, whole_fake = len(real) == m, len(fake) == m
    within_real = _within(polynomial_kernel(real, real)) if whole_real else None
    within_fake = _within(polynomial_kernel(fake, fake)) if whole_fake else None
    if whole_real:
        cross = _row_sums(fake, real)
    elif whole_fake:
        cross = _row_sums(real, fake)
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        f = rng.choice(len(fake), m, replace=False)
        r = rng.choice(len(real), m, replace=False)
        xx = within_fake if whole_fake else _within(polynomial_kernel(fake[f], fake[f]))
        yy = within_real if whole_real else _within(polynomial_kernel(real[r], real[r]))
        if whole_real:
            xy = cross[f].sum()
        elif whole_fake:
            xy = cross[r].sum()
        else:
            xy = polynomial_kernel(fake[f], real[r]).sum()
        values[i] = (xx + yy) / (m * (m - 1)) - 2.0 * xy / (m * m)
    return float(values.mean()), float(values.std())


def _within(kernel: np.ndarray) -> float:
    """The sum of a within-set kernel matrix without its diagonal."""
    return float(kernel.sum() - np.trace(kernel))


def _row_sums(rows: np.ndarray, other: np.ndarray, block: int = 1000) -> np.ndarray:
    """Each row's kernel sum against all of ``other``, a block of rows at a time (no len(rows) x len(other) matrix)."""
    return np.concatenate([polynomial_kernel(rows[i:i + block], other).sum(axis=1)
                           for i in range(0, len(rows), block)])
