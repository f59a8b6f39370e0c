"""What a campaign declares before it runs: its comparisons, their alpha, the margin and the Holm family.

A plan's ``[hypotheses]`` table (read and checked by
``harness.campaign.hypotheses``) becomes a :class:`Hypotheses` record; the
campaign logs it as ``hypotheses.json`` on its parent run and the report reads
it back with :meth:`Hypotheses.from_dict`, so the verdicts follow what was
declared, not what the numbers later suggest.

* confirmatory comparisons: the declared primary ones (arm vs base, metric,
  direction, alpha) and any arm the ``family`` adds; their difference p-values
  are Holm-adjusted together, pooled over classes.
* exploratory comparisons: every other arm on every compared metric, and every
  per-class row; unadjusted, leads for a later plan rather than findings.
* every comparison is judged equivalent within ±``margin`` (a fraction of the
  base's value) by TOST, as :mod:`harness.stats.paired` does.

Only metrics with a direction are compared: FID and KID, lower is better. IS has
none for a single class (a one-class generator can score a low IS by being
right), so it is never given a verdict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Metric -> lower is better. A metric of another split (``test_kid``) takes its kind's direction.
METRICS: dict[str, bool] = {"kid": True, "fid": True}
# Where the arm is expected to lie relative to the base: either way, below, or above its value.
DIRECTIONS = ("two-sided", "lower", "higher")


def lower_is_better(metric: str) -> bool | None:
    """True for a metric where lower is better (``kid``, ``fid``, ``test_kid``...), None when it has no direction."""
    kind = metric.rsplit("_", 1)[-1] if metric not in METRICS else metric
    return METRICS.get(kind)


@dataclass(frozen=True)
class Primary:
    """One declared comparison: ``arm`` against the plan's base on ``metric``."""

    arm: str
    metric: str
    direction: str = "two-sided"  # one of DIRECTIONS
    alpha: float = 0.05


@dataclass(frozen=True)
class Hypotheses:
    """A plan's declared analysis. ``declared`` is False for the defaults of a plan without the table."""

    base: str
    primary: tuple[Primary, ...] = ()
    family: tuple[str, ...] = ()  # extra arms whose comparisons on the primary metrics join the Holm family
    margin: float = 0.10
    alpha: float = 0.05  # for exploratory rows
    control: str | None = None  # the A/A arm: the base's function under another name
    sd_guess: float | None = None  # sd of normalised paired differences, when no earlier campaign gives one
    power: float = 0.8
    declared: bool = True

    @property
    def metrics(self) -> tuple[str, ...]:
        """The primary metrics, in declared order (``("kid",)`` when none is declared)."""
        return tuple(dict.fromkeys(p.metric for p in self.primary)) or ("kid",)

    def confirmatory(self) -> tuple[Primary, ...]:
        """The declared comparisons plus the family's arms on each primary metric (two-sided)."""
        out = list(self.primary)
        for arm in self.family:
            for metric in self.metrics:
                if not any(p.arm == arm and p.metric == metric for p in out):
                    alpha = next((p.alpha for p in self.primary if p.metric == metric), self.alpha)
                    out.append(Primary(arm, metric, "two-sided", alpha))
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hypotheses:
        """The record :meth:`to_dict` wrote (``hypotheses.json``); unknown keys are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["primary"] = tuple(Primary(**p) for p in values.get("primary", ()))
        values["family"] = tuple(values.get("family", ()))
        return cls(**values)
