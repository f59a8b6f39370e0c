"""Precision/recall/density/coverage against the authors' ``prdc`` package; blockwise
distances against SciPy; FID∞ against lines built with a known intercept."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from harness.errors import ConfigError
from harness.measure import fid_infinity as fid_inf
from harness.measure import prdc as measure

prdc_package = pytest.importorskip("prdc")
threadpool_limits = pytest.importorskip("threadpoolctl").threadpool_limits

KEYS = ("precision", "recall", "density", "coverage")


def reference(real, fake, k):
    """``prdc.compute_prdc``, without the line it prints."""
    # prdc runs 8 joblib threads; one BLAS thread each keeps 2 cores from thrashing (4x faster here).
    with threadpool_limits(1), contextlib.redirect_stdout(io.StringIO()):
        return prdc_package.compute_prdc(real, fake, k)


def feature_sets(kind, seed):
    """Real (n, d) and fake (m, d) Gaussian features of one kind of mismatch."""
    rng = np.random.default_rng(seed)
    d = (16, 32, 64)[seed % 3]
    real = rng.normal(size=(400, d))
    if kind == "same distribution":
        return real, rng.normal(size=(300, d))
    if kind == "shifted":
        return real, rng.normal(size=(350, d)) + 0.4
    if kind == "narrower":  # a collapsed generator: high precision, low recall
        return real, 0.5 * rng.normal(size=(250, d))
    if kind == "identical":
        return real, real.copy()
    if kind == "disjoint":  # clusters far apart: all four are 0
        return real, rng.normal(size=(300, d)) + 50.0
    if kind == "large offset":  # uncentred float32 misjudges pairs here
        return real + 300.0, rng.normal(size=(300, d)) + 300.2
    raise AssertionError(kind)


KINDS = ("same distribution", "shifted", "narrower", "identical", "disjoint", "large offset")


# ---------------------------------------------------------------- against the prdc package


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [3, 5])
def test_compute_equals_prdc_package(kind, seed, k):
    real, fake = feature_sets(kind, seed)
    expected = reference(real, fake, k)
    got = measure.compute(real, fake, k, block=64)  # blocks smaller than either set
    for key in KEYS:
        assert got[key] == pytest.approx(float(expected[key]), abs=1e-6), key


@pytest.mark.parametrize("kind", KINDS)
def test_prdc_takes_each_papers_k(kind):
    real, fake = feature_sets(kind, 3)
    fidelity, density = reference(real, fake, 3), reference(real, fake, 5)
    got = measure.prdc(real, fake, block=100)
    assert got["precision"] == pytest.approx(float(fidelity["precision"]), abs=1e-6)
    assert got["recall"] == pytest.approx(float(fidelity["recall"]), abs=1e-6)
    assert got["density"] == pytest.approx(float(density["density"]), abs=1e-6)
    assert got["coverage"] == pytest.approx(float(density["coverage"]), abs=1e-6)


def test_known_values_for_identical_and_disjoint_sets():
    real, _ = feature_sets("identical", 0)
    # Each real ball holds itself and its k - 1 nearer neighbours, strictly: density 1.
    assert measure.prdc(real, real.copy()) == dict.fromkeys(KEYS, 1.0)
    real, fake = feature_sets("disjoint", 0)
    assert measure.prdc(real, fake) == dict.fromkeys(KEYS, 0.0)


def test_float32_inputs_give_the_float64_answer():
    real, fake = feature_sets("shifted", 4)
    assert measure.prdc(real.astype(np.float32), fake.astype(np.float32)) == measure.prdc(
        real.astype(np.float32).astype(np.float64), fake.astype(np.float32).astype(np.float64)
    )


def test_too_few_samples_for_k_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match=r"5 real .* k=5"):
        measure.prdc(rng.normal(size=(5, 4)), rng.normal(size=(20, 4)))
    with pytest.raises(ConfigError, match="k=3"):
        measure.kth_neighbour_radii(rng.normal(size=(3, 4)), 3)
    with pytest.raises(ValueError, match="dimension"):
        measure.prdc(rng.normal(size=(20, 4)), rng.normal(size=(20, 5)))
    with pytest.raises(ValueError, match="NaN"):
        measure.prdc(np.full((20, 4), np.nan), rng.normal(size=(20, 4)))


# ---------------------------------------------------------------- blockwise distances


@pytest.mark.parametrize("block", [1, 37, 1024])
def test_distance_blocks_equal_cdist(block):
    rng = np.random.default_rng(block)
    query, ref = rng.normal(size=(150, 24)) + 3.0, rng.normal(size=(90, 24))
    expected = cdist(query, ref)
    got = np.full_like(expected, np.nan)
    seen = 0
    for rows, distances in measure.distance_blocks(query, ref, block=block):
        assert distances.dtype == np.float32 and distances.shape == (rows.stop - rows.start, len(ref))
        got[rows] = distances
        seen += 1
    assert seen == -(-len(query) // block)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k", [1, 4])
def test_nearest_neighbours_equal_brute_force(k):
    rng = np.random.default_rng(k)
    query, ref = rng.normal(size=(200, 32)), rng.normal(size=(300, 32)) + 0.1
    indices, distances = measure.nearest_neighbours(query, ref, k, block=33)
    full = cdist(query, ref)
    expected = np.argsort(full, axis=1)[:, :k]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(distances, np.take_along_axis(full, expected, axis=1), rtol=1e-12)


def test_kth_neighbour_radii_skip_the_sample_itself():
    rng = np.random.default_rng(7)
    features = rng.normal(size=(120, 16))
    sorted_rows = np.sort(cdist(features, features), axis=1)  # column 0 is the sample itself
    for k in (1, 3, 5):
        radii = measure.kth_neighbour_radii(features, k, block=50)
        np.testing.assert_allclose(radii, sorted_rows[:, k], rtol=1e-12)


# ---------------------------------------------------------------- FID∞


def test_fid_infinity_recovers_a_known_line(monkeypatch):
    intercept, slope = 12.5, 4000.0
    monkeypatch.setattr(fid_inf, "subset_fid", lambda features, mu, sigma: intercept + slope / len(features))
    fake = np.zeros((3000, 4))
    result = fid_inf.fid_infinity(fake, np.zeros(4), np.eye(4), min_size=500)
    assert result.value == pytest.approx(intercept, rel=1e-10)
    assert result.slope == pytest.approx(slope, rel=1e-10)
    assert len(result.sizes) == 10 and result.sizes[0] == 500 and result.sizes[-1] == 3000
    # Evenly spaced in 1 / N, up to rounding N to whole samples.
    ideal = 1.0 / np.linspace(1 / 500, 1 / 3000, 10)
    assert np.abs(np.asarray(result.sizes) - ideal).max() <= 0.5
    assert result.fids == tuple(intercept + slope / n for n in result.sizes)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fid_infinity_removes_the_small_sample_bias(seed):
    # Fake features from the real distribution itself: true FID 0, FID_N biased upwards.
    rng = np.random.default_rng(seed)
    d = 8
    fake = rng.normal(size=(4000, d))
    result = fid_inf.fid_infinity(fake, np.zeros(d), np.eye(d), seed=seed)
    assert result.slope > 0
    assert result.value < result.fids[0]
    assert abs(result.value) < result.fids[0] / 3


def test_fid_infinity_subsets_are_fixed_by_the_seed():
    fake = np.random.default_rng(0).normal(size=(600, 4))
    first = fid_inf.fid_infinity(fake, np.zeros(4), np.eye(4), seed=5)
    assert fid_inf.fid_infinity(fake, np.zeros(4), np.eye(4), seed=5) == first
    assert fid_inf.fid_infinity(fake, np.zeros(4), np.eye(4), seed=6) != first


def test_fid_infinity_refuses_too_few_features():
    fake = np.random.default_rng(0).normal(size=(50, 4))
    with pytest.raises(ConfigError, match=r"min_size=100 .* got 50"):
        fid_inf.fid_infinity(fake, np.zeros(4), np.eye(4), min_size=100)
    with pytest.raises(ConfigError, match=r"needs 80 .* got 50"):
        fid_inf.fid_infinity(fake, np.zeros(4), np.eye(4), sizes=[20, 40, 80])
    with pytest.raises(ConfigError, match="repeat"):
        fid_inf.fid_infinity(fake, np.zeros(4), np.eye(4), min_size=45, points=10)
