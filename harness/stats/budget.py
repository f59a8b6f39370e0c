"""What does a search budget buy? Expected best of k trials, after Lucic et al. (2018),
"Are GANs created equal? A large-scale study".

A design that reaches a good score only with lucky hyperparameters needs many
trials; one that is forgiving gets there in a few. Given the scores of trials
already run (e.g. one design's sweep), :func:`expected_best` answers "if I ran k
trials drawn at random from these, what best score would I expect?" for each k,
and :func:`share_within` "what share of trials lands within 10 % of the best?".
Failed trials (NaN) are refused, not dropped: decide first whether a failed
trial is left out or counts as the worst score, and say which.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from harness.errors import ConfigError

# A best score within this many sds of the trials from zero is too near zero to take 10 % of.
NEAR_ZERO_SDS = 0.1


@dataclasses.dataclass(frozen=True)
class BudgetPoint:
    """Best of ``k`` trials: its expected value (bootstrap ``mean``, ``exact``) and where 95 % of draws land."""

    k: int
    mean: float  # mean over bootstrap draws of the best of k
    low: float  # 2.5th percentile of the best of k over draws
    high: float  # 97.5th percentile
    exact: float  # the same expectation from the order statistics, no sampling


def _trials(values: Sequence[float] | np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ConfigError("no trial scores given; give at least one.")
    bad = int(np.sum(~np.isfinite(v)))
    if bad:
        raise ConfigError(f"{bad} trial score(s) are NaN/inf (failed trials); drop them or replace them by the "
                          "worst score, and say which, then run again.")
    return v


def exact_expected_best(values: Sequence[float] | np.ndarray, k: int, lower_is_better: bool = True) -> float:
    """E[best of k draws with replacement from ``values``], from the order statistics.

    With values sorted from best to worst, v_(1) ... v_(n), the best of k draws is
    v_(i) when all k draws are at rank >= i but not all at rank >= i + 1:
    E = sum_i v_(i) ((n - i + 1)^k - (n - i)^k) / n^k.
    """
    v = _trials(values)
    ordered = np.sort(v) if lower_is_better else np.sort(v)[::-1]
    n = v.size
    i = np.arange(1, n + 1, dtype=float)
    # Ratios to n, not powers of n, so large k cannot overflow.
    weights = ((n - i + 1) / n) ** k - ((n - i) / n) ** k
    return float(np.dot(ordered, weights))


def expected_best(values: Sequence[float] | np.ndarray, k_max: int | None = None, lower_is_better: bool = True,
                  reps: int = 1000, seed: int = 0) -> list[BudgetPoint]:
    """The expected best score of k trials, k = 1 .. ``k_max`` (default: as many as ``values``).

    Each of ``reps`` bootstrap draws picks ``k_max`` trials with replacement from
    ``values``; its first k give one "best of k" per k. Returns one
    :class:`BudgetPoint` per k: the mean over draws, the 2.5 / 97.5 percentiles of
    the best of k (where 95 % of k-trial searches land, not an interval for the
    mean) and the exact order-statistic expectation.
    """
    v = _trials(values)
    k_max = v.size if k_max is None else k_max
    if int(k_max) != k_max or k_max < 1 or int(reps) != reps or reps < 1:
        raise ConfigError(f"k_max and reps must be positive whole numbers, not {k_max!r} and {reps!r}.")
    rng = np.random.default_rng(seed)
    draws = v[rng.integers(0, v.size, size=(int(reps), int(k_max)))]
    best = np.minimum.accumulate(draws, axis=1) if lower_is_better else np.maximum.accumulate(draws, axis=1)
    low, high = np.percentile(best, [2.5, 97.5], axis=0)
    return [BudgetPoint(k + 1, float(best[:, k].mean()), float(low[k]), float(high[k]),
                        exact_expected_best(v, k + 1, lower_is_better)) for k in range(int(k_max))]


def share_within(values: Sequence[float] | np.ndarray, fraction: float = 0.10, lower_is_better: bool = True,
                 scale: float | None = None) -> float:
    """The share of trials whose score is within ``fraction`` of the best one (the best included).

    "Within" means no worse than the best by ``fraction * |best|``, which works
    for a negative best too. When the best is near zero (|best| at most the
    trials' sd / 10, e.g. KID at its floor) 10 % of it is no tolerance at all:
    pass ``scale`` (e.g. the base's mean score) and the tolerance becomes
    ``fraction * |scale|``; without it that case raises ConfigError.
    Returns a fraction in (0, 1].
    """
    v = _trials(values)
    if not fraction >= 0:
        raise ConfigError(f"fraction must be 0 or more (e.g. 0.10 for 10 %), not {fraction!r}.")
    best = float(v.min() if lower_is_better else v.max())
    if scale is None:
        spread = float(v.std(ddof=1)) if v.size > 1 else 0.0
        if best == 0.0 or abs(best) <= NEAR_ZERO_SDS * spread:
            raise ConfigError(f"the best score ({best:.3g}) is too near zero for 'within {100 * fraction:g}% of "
                              "it' to mean anything; pass scale= (e.g. the base's mean score).")
        scale = best
    tolerance = fraction * abs(scale)
    within = v <= best + tolerance if lower_is_better else v >= best - tolerance
    return float(within.mean())
