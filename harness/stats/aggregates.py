"""Robust summaries of many runs over several classes, after Agarwal et al. (2021),
"Deep reinforcement learning at the edge of the statistical precipice".

With a few seeds per class, a mean is pulled by one diverged run and a median
ignores most runs; the interquartile mean (IQM) sits between. Uncertainty comes
from a *stratified* bootstrap: runs are resampled within each class, so every
resample keeps the design's classes and their run counts.

Scores should be on one scale before they are pooled over classes: per class,
divide each run's value by the size of the base arm's mean on that class
(:func:`harness.stats.normalise.normalise_by_base`); 1.0 is then "the base's value"
whatever the class. Lower is better for KID and FID, which
:func:`probability_of_improvement` and :func:`performance_profile` take as a flag.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from harness.errors import ConfigError


class Interval(NamedTuple):
    """A statistic of the data (``estimate``) and its bootstrap interval ``[low, high]``."""

    estimate: float
    low: float
    high: float


def _values(x: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=float).ravel()
    if x.size == 0:
        raise ConfigError(f"{name} has no values; give at least one run.")
    if not np.all(np.isfinite(x)):
        raise ConfigError(f"{name} holds {int(np.sum(~np.isfinite(x)))} NaN/inf value(s); drop the failed runs "
                          "explicitly (and say so) before summarising.")
    return x


def _check_alpha(alpha: float, reps: int) -> None:
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1 (e.g. 0.05), not {alpha!r}.")
    if int(reps) != reps or reps < 1:
        raise ConfigError(f"reps must be a positive whole number (e.g. 2000), not {reps!r}.")


def iqm(x: Sequence[float] | np.ndarray) -> float:
    """The interquartile mean of ``x``: the mean of its middle 50 %.

    ``scipy.stats.trim_mean(x, 0.25)``: it cuts ``floor(n / 4)`` values from each
    end (so for n not divisible by 4 slightly more than half the runs remain).
    Raises ConfigError for no values or NaN/inf values.
    """
    from scipy import stats

    return float(stats.trim_mean(_values(x, "iqm's input"), 0.25))


def stratified_bootstrap_ci(scores_by_class: Mapping[Hashable, Sequence[float] | np.ndarray],
                            statistic: Callable[[dict[Hashable, np.ndarray]], float],
                            reps: int = 2000, alpha: float = 0.05, seed: int = 0) -> Interval:
    """``statistic`` of ``{class: scores}`` with a percentile bootstrap interval, resampling within classes.

    ``statistic`` takes a dict of the same keys to 1-D arrays (each class's runs)
    and returns a number, e.g. ``lambda s: iqm(np.concatenate(list(s.values())))``
    or the mean over classes of each class's mean. Each of ``reps`` resamples draws,
    for every class, as many runs as it has, with replacement, from that class only
    (a fixed ``seed`` makes it repeatable). Returns ``Interval(statistic(data),
    alpha/2 percentile, 1 - alpha/2 percentile)``.
    """
    _check_alpha(alpha, reps)
    if not scores_by_class:
        raise ConfigError("no classes to bootstrap over; give {class: scores} with at least one class.")
    data = {c: _values(v, f"class {c!r}") for c, v in scores_by_class.items()}
    rng = np.random.default_rng(seed)
    # One index matrix per class, drawn up front: row r is class c's r-th resample.
    draws = {c: v[rng.integers(0, v.size, size=(reps, v.size))] for c, v in data.items()}
    boot = np.array([statistic({c: d[r] for c, d in draws.items()}) for r in range(reps)], dtype=float)
    low, high = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Interval(float(statistic(data)), float(low), float(high))


def _better_share(x: np.ndarray, y: np.ndarray, lower_is_better: bool) -> float:
    """P(a random run of x beats a random run of y), ties counting 1/2: Mann-Whitney U / (n m)."""
    wins = (x[:, None] < y[None, :]) if lower_is_better else (x[:, None] > y[None, :])
    ties = x[:, None] == y[None, :]
    return float((wins.sum() + 0.5 * ties.sum()) / (x.size * y.size))


def probability_of_improvement(x_by_class: Mapping[str, Sequence[float] | np.ndarray],
                               y_by_class: Mapping[str, Sequence[float] | np.ndarray],
                               lower_is_better: bool, reps: int = 2000, alpha: float = 0.05,
                               seed: int = 0) -> Interval:
    """P(X better than Y), averaged over classes with equal weight, and its stratified bootstrap interval.

    Per class it is the Mann-Whitney U statistic of X against Y divided by
    ``n * m``: the share of (x run, y run) pairs where x is better (lower when
    ``lower_is_better``), ties counting one half. 0.5 means neither tends to win.
    The bootstrap resamples X's and Y's runs separately within each class.
    Both mappings must hold the same classes. Returns an :class:`Interval`.
    """
    if set(x_by_class) != set(y_by_class):
        only = sorted(map(str, set(x_by_class) ^ set(y_by_class)))
        raise ConfigError(f"X and Y must cover the same classes; only one has {', '.join(only)}.")
    classes = list(x_by_class)
    groups = {**{("x", c): x_by_class[c] for c in classes}, **{("y", c): y_by_class[c] for c in classes}}

    def statistic(s: dict[Hashable, np.ndarray]) -> float:
        return float(np.mean([_better_share(s[("x", c)], s[("y", c)], lower_is_better) for c in classes]))

    return stratified_bootstrap_ci(groups, statistic, reps=reps, alpha=alpha, seed=seed)


def performance_profile(scores: Sequence[float] | np.ndarray, thresholds: Sequence[float] | np.ndarray,
                        lower_is_better: bool = True) -> np.ndarray:
    """The fraction of runs whose score is better than each threshold (for a profile plot).

    Takes normalised scores of all runs (pooled over classes) and thresholds;
    returns an array, one fraction per threshold: ``mean(score < t)`` when
    ``lower_is_better``, else ``mean(score > t)``.
    """
    x = _values(scores, "the scores")
    t = np.asarray(thresholds, dtype=float).ravel()
    better = x[None, :] < t[:, None] if lower_is_better else x[None, :] > t[:, None]
    return better.mean(axis=1)
