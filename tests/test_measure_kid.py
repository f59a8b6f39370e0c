"""KID's shortcuts for a set used whole by every subset give the plain subset loop's values."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure.kid import kernel_inception_distance, mmd2_unbiased


def plain(real, fake, num_subsets, max_subset_size, seed):
    """The reference loop: every subset's kernels computed afresh (the draws in the same order)."""
    m = min(len(real), len(fake), max_subset_size)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        values.append(mmd2_unbiased(x, y))
    return float(np.mean(values)), float(np.std(values))


@pytest.mark.parametrize("n_real,n_fake", [(30, 30), (30, 75), (75, 30), (50, 60)])
def test_shortcuts_match_the_plain_loop(n_real, n_fake):
    rng = np.random.default_rng(1)
    real = rng.normal(0.2, 1.0, (n_real, 6))
    fake = rng.normal(0.0, 1.3, (n_fake, 6))
    got = kernel_inception_distance(real, fake, num_subsets=20, max_subset_size=40, seed=3)
    want = plain(real, fake, 20, 40, 3)
    assert got[0] == pytest.approx(want[0], rel=1e-10, abs=1e-12)
    assert got[1] == pytest.approx(want[1], rel=1e-8, abs=1e-12)
    if n_real == n_fake == 30:
        assert got[1] == 0.0  # both sets whole in every subset: no spread
