"""Can a plan with n seed pairs detect the change it cares about? Power of the paired t-test.

All effects are on the normalised scale of :mod:`.paired`: a mean paired
difference as a fraction of the base's value, with ``sd`` the standard deviation
of those normalised differences (estimate it from earlier runs with
:func:`sd_from_pilot`). The test is the two-sided paired (one-sample) t-test that
:func:`harness.stats.paired.compare_paired` makes; power comes from
``statsmodels.stats.power.TTestPower`` on the standardised effect ``effect / sd``.
A Holm family of m comparisons tests the smallest p at alpha / m, so pass that
alpha to plan for the worst case.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from harness.errors import ConfigError
from harness.stats.normalise import Runs, base_scale, pair_up


def _check(n: float, sd: float, alpha: float, power: float | None = None) -> None:
    if int(n) != n or n < 2:
        raise ConfigError(f"a paired t-test needs at least 2 pairs, and n = {n!r}; plan 2 or more seeds per cell.")
    if not (math.isfinite(sd) and sd > 0):
        raise ConfigError(f"sd of the normalised differences must be positive and finite, not {sd!r}; "
                          "estimate it with sd_from_pilot.")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1 (e.g. 0.05), not {alpha!r}.")
    if power is not None and not alpha < power < 1:
        raise ConfigError(f"power must be between alpha ({alpha:g}) and 1 (e.g. 0.8), not {power!r}.")


def minimum_detectable_effect(n_pairs: int, sd_difference: float, alpha: float = 0.05,
                              power: float = 0.8) -> float:
    """The smallest |mean normalised difference| the two-sided paired t-test finds with ``power``.

    Takes the number of pairs, the sd of normalised differences, the test's
    alpha and the wanted power; returns the effect (a fraction of the base's
    value) = the standardised effect TTestPower solves for, times ``sd_difference``.
    """
    from statsmodels.stats.power import TTestPower

    _check(n_pairs, sd_difference, alpha, power)
    standardised = TTestPower().solve_power(effect_size=None, nobs=n_pairs, alpha=alpha, power=power,
                                            alternative="two-sided")
    return float(standardised) * sd_difference


def power_of(effect: float, n: int, sd: float, alpha: float = 0.05) -> float:
    """The probability that the two-sided paired t-test on ``n`` pairs rejects when the true mean is ``effect``."""
    from statsmodels.stats.power import TTestPower

    _check(n, sd, alpha)
    return float(TTestPower().power(effect_size=abs(effect) / sd, nobs=n, alpha=alpha, alternative="two-sided"))


def pairs_needed(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """The fewest pairs (at least 2) for the paired t-test to detect ``effect`` with ``power``."""
    from statsmodels.stats.power import TTestPower

    _check(2, sd, alpha, power)
    if not (math.isfinite(effect) and effect != 0):
        raise ConfigError(f"the effect to detect must be a non-zero fraction (e.g. 0.10), not {effect!r}.")
    n = TTestPower().solve_power(effect_size=abs(effect) / sd, nobs=None, alpha=alpha, power=power,
                                 alternative="two-sided")
    return max(2, math.ceil(float(n)))


class Detectability(NamedTuple):
    """Whether a plan's difference test can detect ``margin``, and its minimum detectable effect."""

    detectable: bool
    mde: float


def can_detect(margin: float, n: int, sd: float, alpha: float = 0.05, power: float = 0.8) -> Detectability:
    """Whether a change of ``margin`` is at least the plan's minimum detectable effect (n pairs, sd).

    Returns ``Detectability(margin >= mde, mde)``; False means a real change of
    the margin's size would be missed more often than ``1 - power`` — warn before
    running. (Showing equivalence within ±margin by TOST when the true change is
    0 needs about the same n: in normal terms 1.645 + 1.28 standard errors inside
    the margin, against 1.96 + 0.84 for the difference test at 80 % power.)
    """
    mde = minimum_detectable_effect(n, sd, alpha, power)
    return Detectability(bool(abs(margin) >= mde), mde)


def sd_from_pilot(values_base: Runs | Mapping[str, Runs], values_arm: Runs | Mapping[str, Runs]) -> float:
    """The sd of normalised paired differences ``(arm - base) / |mean(base)|`` in earlier runs.

    Takes one class's runs (``{seed: value}`` or sequences paired by position),
    or ``{class: runs}`` for several classes, each normalised by its own base
    mean. Only complete pairs count. Returns the sample sd (ddof 1) of all the
    normalised differences, what :func:`compare_pooled`'s t-test sees. Raises
    ConfigError with fewer than 2 complete pairs or a base mean near zero.
    """
    several = isinstance(values_base, Mapping) and all(isinstance(v, (Mapping, Sequence, np.ndarray))
                                                       and not isinstance(v, str) for v in values_base.values())
    base_by = values_base if several else {"": values_base}
    arm_by = values_arm if several else {"": values_arm}
    diffs = []
    for c in base_by:
        a, b, _ = pair_up(arm_by.get(c, {}), base_by[c])
        if len(b):
            diffs.append((a - b) / base_scale(b, f"on {c}" if c else ""))
    d = np.concatenate(diffs) if diffs else np.empty(0)
    if d.size < 2:
        raise ConfigError(f"the pilot has {d.size} complete pair(s); an sd needs at least 2.")
    return float(d.std(ddof=1))
