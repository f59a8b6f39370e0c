"""One scale for every class: a run's value as a fraction of the base arm's mean on its class.

KID and FID differ in scale from class to class (a class at FID 300 moves by tens
where one at 80 moves by a few), so raw values or raw differences would let the
noisiest class decide a pooled result. Dividing by the size of the base's mean on
the same class turns every value into "a fraction of the base's value": a paired
difference ``(arm - base) / |mean(base)|`` of -0.2 reads "20 % below the base",
whatever the class. The divisor is the *absolute* mean so that a negative KID mean
(possible: KID is an unbiased estimate) cannot flip the sign of a change or the
order of values; for the usual positive mean it is plain ``mean(base)``.

A base mean near zero is refused rather than divided by: KID at its floor
averages to about 0 with seed noise on both sides, and "a percent of 0" is noise.
The rule: the mean must be finite, non-zero, and more than ``NEAR_ZERO``
standard errors (sd / sqrt(n) of the base's values) away from zero. Closer than
one standard error, the size of the mean, which is the unit of every change, is
not known to within 100 %. (The p-values would still be valid, since a t-test
does not depend on the scale; it is the percentages that would mean nothing.)

Values come in one of two shapes, called ``Runs`` below: a mapping
``{seed: value}`` (pairs are matched by seed), or a sequence paired by position.
A failed or missing run is ``None`` or NaN (or, in a mapping, an absent seed).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Union

import numpy as np

from harness.errors import ConfigError

Runs = Union[Mapping[Hashable, Union[float, None]], Sequence[Union[float, None]]]

# |mean(base)| must exceed this many standard errors of that mean; below it the base's
# size is unknown to within 100 % and a percent change of it is noise.
NEAR_ZERO = 1.0


def _finite(value: object) -> bool:
    return value is not None and isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)


def _by_key(runs: Runs, name: str) -> dict[Hashable, float | None]:
    if isinstance(runs, Mapping):
        return dict(runs)
    if isinstance(runs, (str, bytes)) or not isinstance(runs, (Sequence, np.ndarray)):
        raise ConfigError(f"{name} must be a {{seed: value}} mapping or a sequence of values, "
                          f"not {type(runs).__name__}.")
    return dict(enumerate(runs))


def _sorted_keys(keys: set[Hashable]) -> list[Hashable]:
    try:
        return sorted(keys)  # seeds are usually ints
    except TypeError:
        return sorted(keys, key=repr)


def pair_up(arm: Runs, base: Runs) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Match ``arm`` and ``base`` runs by seed (or position); see the module docstring for shapes.

    Returns ``(arm_values, base_values, missing)``: the two aligned float arrays of
    the complete pairs (both values finite), in seed order, and one note per
    incomplete pair naming the seed and which side is missing or not finite. An
    empty side leaves every run of the other missing. Raises ConfigError for
    non-empty sequences of different lengths (pairing by position would then be a
    guess) or a mapping against a sequence.
    """
    if len(arm) and len(base):  # an empty side (a class one arm never ran) pairs with anything
        if isinstance(arm, Mapping) != isinstance(base, Mapping):
            raise ConfigError("one side's runs are a {seed: value} mapping and the other's a sequence; give both "
                              "as mappings so pairs are matched by seed.")
        if not isinstance(arm, Mapping) and len(arm) != len(base):
            raise ConfigError(f"the arm has {len(arm)} values and the base {len(base)}: sequences are paired by "
                              "position, so give {seed: value} mappings, or None for a failed run.")
    arm_runs, base_runs = _by_key(arm, "the arm's values"), _by_key(base, "the base's values")
    arm_out, base_out, missing = [], [], []
    for key in _sorted_keys(set(arm_runs) | set(base_runs)):
        a, b = arm_runs.get(key), base_runs.get(key)
        bad = [side for side, v in (("arm", a), ("base", b)) if not _finite(v)]
        if bad:
            missing.append(f"seed {key}: {' and '.join(bad)} missing or not finite")
        else:
            arm_out.append(float(a))
            base_out.append(float(b))
    return np.asarray(arm_out, dtype=float), np.asarray(base_out, dtype=float), missing


def base_scale_problem(base: np.ndarray, where: str = "") -> str | None:
    """Why the base values ``base`` cannot be a scale (mean near zero), or None when they can.

    ``where`` (e.g. "on cat") is put into the reason. The rule is in the module docstring.
    """
    base = np.asarray(base, dtype=float)
    label = f" {where}" if where else ""
    if base.size == 0 or not np.all(np.isfinite(base)):
        return f"the base has no finite values{label} to scale by"
    mean = float(base.mean())
    se = float(base.std(ddof=1)) / np.sqrt(base.size) if base.size > 1 else 0.0
    if mean == 0.0 or abs(mean) <= NEAR_ZERO * se:
        return (f"the base's mean{label} ({mean:.3g}) is within {NEAR_ZERO:g} standard error ({se:.3g}) of zero, "
                "so a change in % of it would be noise; compare raw differences instead")
    return None


def base_scale(base: Sequence[float] | np.ndarray, where: str = "") -> float:
    """``|mean(base)|``, the divisor of a normalised value; ConfigError when the mean is too near zero."""
    problem = base_scale_problem(np.asarray(base, dtype=float), where)
    if problem:
        raise ConfigError(problem + ".")
    return abs(float(np.mean(base)))


def normalise_by_base(values_by_class: Mapping[str, Sequence[float] | np.ndarray],
                      base_by_class: Mapping[str, Sequence[float] | np.ndarray]) -> dict[str, np.ndarray]:
    """Each class's values divided by the size of the base's mean on that class.

    Takes ``{class: values}`` for the arm being scored and for the base (same
    classes). Returns ``{class: values / |mean(base on class)|}``: with a positive
    base mean, 1.0 is "the base's value" and 0.8 "20 % below it"; order is kept
    either way, so "lower is better" still holds. Use it before :mod:`.aggregates`
    so each class counts on one scale. Raises ConfigError for a class the base
    lacks or whose base mean is near zero (see the module docstring).
    """
    missing = sorted(set(values_by_class) - set(base_by_class))
    if missing:
        raise ConfigError(f"no base values for class(es) {', '.join(map(str, missing))}; give the base's runs "
                          "on every class to be normalised.")
    return {c: np.asarray(v, dtype=float) / base_scale(base_by_class[c], f"on {c}")
            for c, v in values_by_class.items()}
