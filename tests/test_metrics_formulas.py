"""FID, KID and IS against independent NumPy/SciPy formulas and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from harness.measure import fid, inception_score, kid

# ---------------------------------------------------------------- helpers written here, independently


def fid_by_eigh(mu1, s1, mu2, s2):
    """Tr((S1 S2)^1/2) as the sum of sqrt(eig(S1^1/2 S2 S1^1/2)), a symmetric problem."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


def random_spd(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def mmd2_by_pairs(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, by explicit masks over pairs."""
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    m = len(x)
    off = ~np.eye(m, dtype=bool)
    return k(x, x)[off].mean() + k(y, y)[off].mean() - 2 * k(x, y).mean()


# ---------------------------------------------------------------- FID


def test_fid_of_diagonal_gaussians_is_known_in_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    # Commuting covariances: Tr((S1 S2)^1/2) = sum sqrt(var1 var2).
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    value, info = fid.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert value == pytest.approx(expected, rel=1e-10)  # 5 + (1 + 1 + 0) = 7
    assert value == pytest.approx(7.0)
    assert not info.offset_applied


def test_fid_matches_an_independent_formula_on_full_covariances():
    rng = np.random.default_rng(1)
    d = 20
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_spd(rng, d), random_spd(rng, d, scale=3.0)
    value, info = fid.frechet_distance(mu1, s1, mu2, s2)
    assert value == pytest.approx(fid_by_eigh(mu1, s1, mu2, s2), rel=1e-8)
    assert info.sqrtm_error < 1e-8


def test_fid_of_identical_statistics_is_zero_and_symmetric():
    rng = np.random.default_rng(2)
    mu, s = rng.normal(size=8), random_spd(rng, 8)
    assert fid.frechet_distance(mu, s, mu, s)[0] == pytest.approx(0.0, abs=1e-9)
    s2 = random_spd(rng, 8)
    assert fid.frechet_distance(mu, s, mu + 1, s2)[0] == pytest.approx(fid.frechet_distance(mu + 1, s2, mu, s)[0])


def test_statistics_are_the_sample_mean_and_unbiased_covariance():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    mu, sigma = fid.statistics(x)
    centred = x.astype(np.float64) - x.astype(np.float64).mean(0)
    np.testing.assert_allclose(mu, x.astype(np.float64).sum(0) / 50, rtol=1e-12)
    np.testing.assert_allclose(sigma, centred.T @ centred / 49, rtol=1e-12)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64


def test_fid_of_samples_approaches_the_closed_form():
    rng = np.random.default_rng(4)
    n = 20000
    a = rng.normal([0, 0], [1, 2], size=(n, 2))
    b = rng.normal([1, 0], [2, 2], size=(n, 2))
    value, _ = fid.frechet_distance(*fid.statistics(a), *fid.statistics(b))
    assert value == pytest.approx(1 + 1 + 0, abs=0.1)


def test_fid_rank_deficient_covariances_discard_tiny_imaginary_parts():
    # Fewer samples than dimensions: singular covariances, as with a small class.
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(5, 50)), rng.normal(size=(5, 50)) + 0.3
    (mu1, s1), (mu2, s2) = fid.statistics(a), fid.statistics(b)
    value, info = fid.frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(value)
    assert value == pytest.approx(fid_by_eigh(mu1, s1, mu2, s2), rel=1e-4)
    assert 0 <= info.max_imag < 1e-3


def test_fid_adds_the_reference_offset_when_the_square_root_is_not_finite(monkeypatch):
    rng = np.random.default_rng(6)
    mu1, mu2, s1, s2 = rng.normal(size=3), rng.normal(size=3), random_spd(rng, 3), random_spd(rng, 3)
    real_sqrtm = fid.linalg.sqrtm
    calls = []

    def sqrtm_failing_once(a):
        calls.append(a)
        return np.full_like(a, np.inf) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(fid.linalg, "sqrtm", sqrtm_failing_once)
    with pytest.warns(RuntimeWarning, match="singular"):
        value, info = fid.frechet_distance(mu1, s1, mu2, s2)
    offset = 1e-6 * np.eye(3)
    assert info.offset_applied and info.eps == 1e-6
    np.testing.assert_allclose(calls[1], (s1 + offset) @ (s2 + offset))
    assert value == pytest.approx(fid_by_eigh(mu1, s1 + offset, mu2, s2 + offset) - 6e-6, rel=1e-8)


def test_fid_refuses_a_large_imaginary_component(monkeypatch):
    monkeypatch.setattr(fid.linalg, "sqrtm", lambda a: np.eye(2) * (1 + 0.5j))
    with pytest.raises(ValueError, match="imaginary"):
        fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2))


def test_fid_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="mismatched"):
        fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


# ---------------------------------------------------------------- KID


def test_kid_full_sets_equal_the_pairwise_estimator():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(40, 6)), rng.normal(0.5, 1.0, size=(40, 6))
    # Subsets as large as the sets are permutations; the estimator ignores order.
    mean, std = kid.kernel_inception_distance(y, x, num_subsets=5, max_subset_size=1000)
    assert mean == pytest.approx(mmd2_by_pairs(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_kid_subsets_match_an_independent_estimator_with_the_same_draws():
    rng = np.random.default_rng(8)
    real, fake = rng.normal(size=(120, 5)), rng.normal(0.2, 1.3, size=(90, 5))
    mean, std = kid.kernel_inception_distance(real, fake, num_subsets=7, max_subset_size=30, seed=11)
    draws = np.random.default_rng(11)
    values = []
    for _ in range(7):
        f = fake[draws.choice(90, 30, replace=False)]
        r = real[draws.choice(120, 30, replace=False)]
        values.append(mmd2_by_pairs(f, r))
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values), rel=1e-10)


def test_kid_of_one_dimensional_gaussians_matches_the_closed_form():
    # d = 1: (xy + 1)^3 = 1 + 3xy + 3x^2y^2 + x^3y^3, so the population MMD^2 is
    # 3 (E x - E y)^2 + 3 (E x^2 - E y^2)^2 + (E x^3 - E y^3)^2.
    def moments(mu, sd):
        return np.array([mu, mu**2 + sd**2, mu**3 + 3 * mu * sd**2])

    m1, m2 = moments(0.0, 1.0), moments(0.5, 0.8)
    expected = float(np.sum(np.array([3, 3, 1]) * (m1 - m2) ** 2))
    rng = np.random.default_rng(9)
    real, fake = rng.normal(0.0, 1.0, size=(4000, 1)), rng.normal(0.5, 0.8, size=(4000, 1))
    mean, std = kid.kernel_inception_distance(real, fake, num_subsets=20, max_subset_size=1000)
    assert mean == pytest.approx(expected, rel=0.1)
    assert 0 < std < expected


def test_kid_of_one_distribution_is_near_zero():
    rng = np.random.default_rng(10)
    real, fake = rng.normal(size=(600, 8)), rng.normal(size=(600, 8))
    mean, std = kid.kernel_inception_distance(real, fake, num_subsets=20, max_subset_size=300)
    assert abs(mean) < 3 * std / np.sqrt(20) + 1e-3


def test_kid_is_seeded():
    rng = np.random.default_rng(12)
    real, fake = rng.normal(size=(50, 3)), rng.normal(size=(60, 3))
    first = kid.kernel_inception_distance(real, fake, num_subsets=4, max_subset_size=20, seed=3)
    assert first == kid.kernel_inception_distance(real, fake, num_subsets=4, max_subset_size=20, seed=3)
    assert first != kid.kernel_inception_distance(real, fake, num_subsets=4, max_subset_size=20, seed=4)


# ---------------------------------------------------------------- IS


def is_by_scipy(probs, splits):
    scores = []
    for part in np.array_split(probs, splits):
        marginal = part.mean(0)
        scores.append(np.exp(np.mean([stats.entropy(p, marginal) for p in part])))
    return np.mean(scores), np.std(scores)


def test_inception_score_matches_scipy_kl():
    rng = np.random.default_rng(13)
    probs = rng.dirichlet(np.full(10, 0.3), size=1000)
    mean, std = inception_score.inception_score(probs, splits=10)
    ref_mean, ref_std = is_by_scipy(probs, 10)
    assert mean == pytest.approx(ref_mean, rel=1e-10)
    assert std == pytest.approx(ref_std, rel=1e-8)


def test_inception_score_known_extremes():
    k = 8
    confident_and_diverse = np.tile(np.eye(k), (10, 1))  # every split holds each class equally
    assert inception_score.inception_score(confident_and_diverse, splits=10) == pytest.approx((k, 0.0))
    uninformative = np.full((100, k), 1 / k)
    assert inception_score.inception_score(uninformative, splits=10) == pytest.approx((1.0, 0.0))


def test_inception_score_splits_in_order_without_shuffling():
    # First half all class 0, second half all class 1: each of 2 splits scores 1.
    probs = np.repeat(np.eye(2), 50, axis=0)
    assert inception_score.inception_score(probs, splits=2) == pytest.approx((1.0, 0.0))
    assert inception_score.inception_score(probs, splits=1)[0] == pytest.approx(2.0)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 6), st.integers(0, 10_000))
def test_inception_score_lies_between_one_and_the_class_count(k, seed):
    probs = np.random.default_rng(seed).dirichlet(np.ones(k), size=40)
    mean, _ = inception_score.inception_score(probs, splits=4)
    assert 1.0 - 1e-12 <= mean <= k + 1e-12
