"""Precision, recall, density and coverage of generated features against real ones.

Precision and recall as Kynkäänniemi et al. 2019 ("Improved Precision and
Recall Metric for Assessing Generative Models", k = 3); density and coverage
as Naeem et al. 2020 ("Reliable Fidelity and Diversity Metrics for Generative
Models", k = 5). Definitions are those of the authors' ``prdc`` package
(``prdc.compute_prdc``): a sample's ball has the radius of its k-th nearest
neighbour in its own set (self excluded), and "inside" is strict (<).

Distances come in blocks of rows, so no N x N matrix is ever held. Each block
is computed in float32 as ||a||^2 + ||b||^2 - 2 a.b, the fast path; a pair
whose float32 value lies within the rounding bound of a decision (a radius, or
the k-th smallest of a row) is recomputed in float64 from the differences.
Every decision is therefore that of a float64 computation, as ``prdc`` makes
on float64 features, at nearly the cost of float32.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from harness.errors import ConfigError

# Rows of the query set per block: a 1024 x 10,000 float32 block is 40 MB.
BLOCK = 1024
# Unit roundoff of float32.
_U = float(np.finfo(np.float32).eps) / 2
# Pairs whose float64 distance is computed at once (pairs x features x 8 bytes).
_EXACT_CHUNK = 4096


def _features(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} features must be (n >= 1, d), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} features contain NaN or inf; check the feature extraction")
    return x


class _Pair:
    """A query and a reference set prepared for blockwise distances.

    For the float32 path both are shifted by the reference mean: distances do
    not change, and the float32 error, which scales with the squared norms,
    shrinks when the features share a large offset, as post-ReLU features do.
    Float64 distances use the unshifted features, so one pair of vectors gets
    the same bits whichever sets it is measured in (ties stay ties).
    """

    def __init__(self, query: np.ndarray, reference: np.ndarray):
        if query.shape[1] != reference.shape[1]:
            raise ValueError(
                f"features differ in dimension: {query.shape[1]} (query) vs {reference.shape[1]} (reference)"
            )
        self.a, self.b = query, reference
        centre = reference.mean(axis=0)
        self.b32 = (reference - centre).astype(np.float32)
        self.nb = np.einsum("ij,ij->i", self.b32, self.b32, dtype=np.float64)
        if query is reference:  # a set against itself: one float32 copy, not two
            self.a32, self.na = self.b32, self.nb
        else:
            self.a32 = (query - centre).astype(np.float32)
            self.na = np.einsum("ij,ij->i", self.a32, self.a32, dtype=np.float64)
        # A bound on |float32 squared distance - exact squared distance| per
        # unit of ||a||^2 + ||b||^2: a length-d dot product and two norms in
        # float32 (2 gamma_d, for any summation order) plus rounding the inputs
        # and the final sums (10 u). Measured errors are ~100x smaller; the
        # bound only decides which few pairs get recomputed.
        d = self.a.shape[1]
        self.relative_error = 2 * d * _U / (1 - d * _U) + 10 * _U

    def blocks(self, block: int) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        """Yield (rows, float32 squared distances, their error bound) per block of query rows."""
        if block < 1:
            raise ValueError(f"block must be a positive number of rows, got {block}")
        for start in range(0, len(self.a), block):
            rows = slice(start, min(start + block, len(self.a)))
            squared = self.a32[rows] @ self.b32.T
            squared *= -2
            squared += self.na[rows, None].astype(np.float32)
            squared += self.nb[None, :].astype(np.float32)
            np.maximum(squared, 0, out=squared)
            bound = (self.na[rows, None] + self.nb[None, :]) * self.relative_error
            yield rows, squared, bound

    def exact(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Return the float64 distances between query rows ``i`` and reference rows ``j``."""
        out = np.empty(len(i))
        for s in range(0, len(i), _EXACT_CHUNK):
            diff = self.a[i[s : s + _EXACT_CHUNK]] - self.b[j[s : s + _EXACT_CHUNK]]
            out[s : s + _EXACT_CHUNK] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return out


def distance_blocks(
    query: np.ndarray, reference: np.ndarray, *, block: int = BLOCK
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield (rows, distances) covering the Euclidean distances from ``query`` to ``reference``.

    query (n, d), reference (m, d). Each ``distances`` is a float32 (rows, m)
    block, ||a||^2 + ||b||^2 - 2 a.b clipped at 0, then square-rooted.
    """
    pair = _Pair(_features("query", query), _features("reference", reference))
    for rows, squared, _ in pair.blocks(block):
        yield rows, np.sqrt(squared, out=squared)


def nearest_neighbours(
    query: np.ndarray, reference: np.ndarray, k: int = 1, *, block: int = BLOCK
) -> tuple[np.ndarray, np.ndarray]:
    """Return the k nearest reference rows of every query row.

    query (n, d), reference (m, d), 1 <= k <= m. Returns ``indices`` (n, k)
    int64 into ``reference`` and ``distances`` (n, k) float64, nearest first;
    the distances are float64-exact. A row that is also in ``reference``
    finds itself first, at distance 0.
    """
    pair = _Pair(_features("query", query), _features("reference", reference))
    m = len(pair.b)
    if not 1 <= k <= m:
        raise ConfigError(f"nearest neighbours: k={k} needs 1 <= k <= {m}, the number of reference samples")
    indices = np.empty((len(pair.a), k), dtype=np.int64)
    distances = np.empty((len(pair.a), k))
    for rows, squared, bound in pair.blocks(block):
        # Any row member of the true k nearest has a float32 value below
        # ceiling: the largest upper bound among the k smallest float32 values.
        first = np.argpartition(squared, k - 1, axis=1)[:, :k]
        upper = np.take_along_axis(squared, first, axis=1) + np.take_along_axis(bound, first, axis=1)
        ceiling = upper.max(axis=1)
        i, j = np.nonzero(squared - bound <= ceiling[:, None])
        exact = pair.exact(i + rows.start, j)
        # Sort candidates by row, then distance; each row's first k are its nearest.
        order = np.lexsort((exact, i))
        i, j, exact = i[order], j[order], exact[order]
        starts = np.searchsorted(i, np.arange(squared.shape[0]))
        take = starts[:, None] + np.arange(k)
        indices[rows] = j[take]
        distances[rows] = exact[take]
    return indices, distances


def kth_neighbour_radii(features: np.ndarray, k: int, *, block: int = BLOCK) -> np.ndarray:
    """Return (n,) float64 distances from each row of ``features`` (n, d) to its k-th nearest other row.

    As ``prdc``: the (k + 1)-th smallest distance of a row, its own 0 included.
    Raises ConfigError unless 1 <= k < n.
    """
    features = _features("features", features)
    if not 1 <= k < len(features):
        raise ConfigError(
            f"k-th neighbour radii: k={k} needs 1 <= k < {len(features)}, the number of samples; "
            "use a smaller k or more samples"
        )
    return nearest_neighbours(features, features, k + 1, block=block)[1][:, k]


def _inside(
    pair: _Pair, rows: slice, squared: np.ndarray, bound: np.ndarray, radii: np.ndarray
) -> np.ndarray:
    """Return the (rows, m) mask distance < radius, float64-exact; ``radii`` broadcasts to the block."""
    margin = squared - radii**2
    inside = margin < -bound
    i, j = np.nonzero(np.abs(margin) <= bound)
    if len(i):
        r = np.broadcast_to(radii, squared.shape)[i, j]
        inside[i, j] = pair.exact(i + rows.start, j) < r
    return inside


def _measure(
    real: np.ndarray, fake: np.ndarray, k_fidelity: int, k_density: int, block: int
) -> dict[str, float]:
    real, fake = _features("real", real), _features("fake", fake)
    for name, k in (("k_fidelity", k_fidelity), ("k_density", k_density)):
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"{name} must be a positive whole number of neighbours, got {k!r}")
    k_real = max(k_fidelity, k_density)
    if k_real >= len(real) or k_fidelity >= len(fake):
        raise ConfigError(
            f"precision/recall/density/coverage need more than k samples per set: got {len(real)} real "
            f"and {len(fake)} fake for k={k_real} (real) and k={k_fidelity} (fake); "
            "use more samples or a smaller k"
        )
    # One neighbour search on the real set gives both radii.
    real_nearest = nearest_neighbours(real, real, k_real + 1, block=block)[1]
    real_fidelity, real_density = real_nearest[:, k_fidelity], real_nearest[:, k_density]
    fake_fidelity = kth_neighbour_radii(fake, k_fidelity, block=block)

    # One pass over real x fake blocks: real rows, fake columns.
    pair = _Pair(real, fake)
    in_real_ball = np.zeros(len(fake), dtype=bool)  # any real ball (k_fidelity) holds the fake
    real_balls_holding = np.zeros(len(fake), dtype=np.int64)  # how many real balls (k_density)
    in_fake_ball = np.zeros(len(real), dtype=bool)  # any fake ball holds the real
    covered = np.zeros(len(real), dtype=bool)  # some fake lies in the real's ball (k_density)
    for rows, squared, bound in pair.blocks(block):
        in_real_ball |= _inside(pair, rows, squared, bound, real_fidelity[rows, None]).any(axis=0)
        inside_density = _inside(pair, rows, squared, bound, real_density[rows, None])
        real_balls_holding += inside_density.sum(axis=0)
        # The nearest fake lies inside the ball exactly when any fake does.
        covered[rows] = inside_density.any(axis=1)
        in_fake_ball[rows] = _inside(pair, rows, squared, bound, fake_fidelity[None, :]).any(axis=1)

    return {
        "precision": float(in_real_ball.mean()),
        "recall": float(in_fake_ball.mean()),
        "density": float(real_balls_holding.mean() / k_density),
        "coverage": float(covered.mean()),
    }


def compute(real: np.ndarray, fake: np.ndarray, nearest_k: int, *, block: int = BLOCK) -> dict[str, float]:
    """Return precision, recall, density and coverage with one k, as ``prdc.compute_prdc``.

    real (n, d), fake (m, d): features of the two sets; nearest_k < n and < m.
    Returns a dict with keys precision, recall, density, coverage (floats;
    density can exceed 1).
    """
    return _measure(real, fake, nearest_k, nearest_k, block)


def prdc(
    real: np.ndarray, fake: np.ndarray, *, k_fidelity: int = 3, k_density: int = 5, block: int = BLOCK
) -> dict[str, float]:
    """Return precision and recall (k = k_fidelity) and density and coverage (k = k_density).

    real (n, d), fake (m, d): features of the two sets. The defaults are each
    paper's k. Returns a dict with keys precision, recall, density, coverage.
    Raises ConfigError when a set has no more samples than its k.
    """
    return _measure(real, fake, k_fidelity, k_density, block)
