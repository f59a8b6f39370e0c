"""A plan's ``[hypotheses]`` table, read and checked against the plan's arms before anything trains.

    [hypotheses]
    base = "animals_baseline"           # default: the grid's base, else the first variant
    primary = [{arm = "bn", metric = "kid", direction = "two-sided", alpha = 0.05}]
    family = ["kernel4"]                # arms joining the primary ones in the Holm family (default none)
    margin = 0.10                       # equivalence: within ±10% of the base's value
    alpha = 0.05                        # for the exploratory rows
    control = true                      # the A/A arm (default); false, or a variant name
    sd_guess = 0.15                     # sd of normalised paired differences, when no earlier
                                        #   campaign on these datasets gives one (power)
    power = 0.8

``direction`` is one of ``two-sided``, ``lower`` (the arm's value expected below
the base's) or ``higher``. Metrics are those with a direction (``kid``, ``fid``,
or one of another split such as ``test_kid``); IS has none for one class.

The control computes the base's function under another name: the base with its
LeakyReLU written the other way (a layer or inline), which is the same function.
It is added to the plan's arms when missing. A plan without the table is
exploratory: it gets the defaults and no control is added (a control already
among its arms is still reported as one).
"""

from __future__ import annotations

import math
from typing import Any

from harness.errors import ConfigError, check_keys, closest
from harness.stats.design import DIRECTIONS, METRICS, Hypotheses, Primary, lower_is_better
from variants.control import control_name, same_architecture

KEYS = ("base", "primary", "family", "margin", "alpha", "control", "sd_guess", "power")
PRIMARY_KEYS = ("arm", "metric", "direction", "alpha")


def read_hypotheses(raw: Any, arms: list[str], default_base: str, where: str) -> tuple[Hypotheses, list[str]]:
    """The checked hypotheses of a plan and the arms it runs (the control added when missing).

    ``raw`` is the ``[hypotheses]`` table (None when the plan has none), ``arms``
    the plan's variants, ``default_base`` the grid's base or first variant.
    Raises ConfigError naming the key, and the closest valid name, for every mistake.
    """
    where = f"{where} [hypotheses]"
    if raw is None:
        control = control_name(default_base)
        return Hypotheses(base=default_base, control=same_architecture(control, arms),
                          declared=False), arms
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: hypotheses must be a table ([hypotheses] with primary, margin, ...).")
    check_keys(raw, KEYS, where)
    base = raw.get("base", default_base)
    _arm(base, arms, f"{where} base")
    margin = _fraction(raw, "margin", 0.10, where, upper=None)
    alpha = _fraction(raw, "alpha", 0.05, where)
    power = _fraction(raw, "power", 0.8, where)
    sd_guess = raw.get("sd_guess")
    if sd_guess is not None and not (_number(sd_guess) and sd_guess > 0):
        raise ConfigError(f"{where}: sd_guess = {sd_guess!r} must be a positive number (e.g. 0.15: normalised "
                          "paired differences vary by 15% of the base's value from seed to seed).")
    arms = list(arms)
    control = raw.get("control", True)
    if control is True:
        control = control_name(base)
        present = same_architecture(control, arms)  # the same architecture under another name counts
        control, arms = (present, arms) if present else (control, arms + [control])
    elif control is False:
        control = None
    elif isinstance(control, str):
        _arm(control, arms, f"{where} control")
    else:
        raise ConfigError(f"{where}: control = {control!r} must be true, false or an arm of the plan.")
    primary = raw.get("primary", [])
    if isinstance(primary, dict):
        primary = [primary]
    if not isinstance(primary, list) or not all(isinstance(p, dict) for p in primary):
        raise ConfigError(f"{where}: primary must be a list of tables, e.g. "
                          "primary = [{arm = \"bn\", metric = \"kid\", direction = \"two-sided\"}].")
    declared = tuple(_primary(p, arms, base, alpha, f"{where} primary[{i}]") for i, p in enumerate(primary))
    family = raw.get("family", [])
    if not isinstance(family, list) or not all(isinstance(a, str) for a in family):
        raise ConfigError(f"{where}: family must be a list of arms, e.g. family = [\"kernel4\"].")
    for arm in family:
        _arm(arm, arms, f"{where} family")
    return Hypotheses(base=base, primary=declared, family=tuple(family), margin=margin, alpha=alpha,
                      control=control, sd_guess=sd_guess, power=power), arms


def _primary(table: dict, arms: list[str], base: str, alpha: float, where: str) -> Primary:
    check_keys(table, PRIMARY_KEYS, where)
    if "arm" not in table or "metric" not in table:
        raise ConfigError(f"{where}: give arm and metric, e.g. {{arm = \"bn\", metric = \"kid\"}}.")
    arm, metric = table["arm"], table["metric"]
    _arm(arm, arms, f"{where} arm")
    if arm == base:
        raise ConfigError(f"{where} arm: {arm!r} is the base; name an arm to compare with it.")
    if not isinstance(metric, str) or lower_is_better(metric) is None:
        guess = closest(str(metric), METRICS)
        why = " (IS has no direction for one class)" if metric in ("is", "inception_score") else ""
        raise ConfigError(f"{where} metric: {metric!r} cannot be compared{why}"
                          + (f" (did you mean {guess!r}?)" if guess and not why else "")
                          + f"; valid: {', '.join(METRICS)} (or another split's, e.g. test_kid).")
    direction = table.get("direction", "two-sided")
    if direction not in DIRECTIONS:
        guess = closest(str(direction), DIRECTIONS)
        raise ConfigError(f"{where} direction: unknown direction {direction!r}"
                          + (f" (did you mean {guess!r}?)" if guess else "") + f"; valid: {', '.join(DIRECTIONS)}.")
    return Primary(arm, metric, direction, _fraction(table, "alpha", alpha, where))


def _arm(name: Any, arms: list[str], where: str) -> None:
    if name not in arms:
        guess = closest(str(name), arms)
        raise ConfigError(f"{where}: {name!r} is not an arm of the plan"
                          + (f" (did you mean {guess!r}?)" if guess else "") + f"; arms: {', '.join(arms)}.")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fraction(table: dict, key: str, default: float, where: str, upper: float | None = 1.0) -> float:
    value = table.get(key, default)
    if not _number(value) or value <= 0 or (upper is not None and value >= upper):
        raise ConfigError(f"{where}: {key} = {value!r} must be a number above 0"
                          + (f" and below {upper:g}" if upper is not None else "") + f" (e.g. {default:g}).")
    return float(value)

