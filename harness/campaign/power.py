"""What a plan can detect before it runs: the minimum detectable effect that ``campaign --dry-run`` prints.

The seed-to-seed spread (the sd of normalised paired differences, see
``harness.stats.power``) comes from the newest earlier campaign in the store
that ran the plan's base on one of its datasets: its control against the base
when it ran one, else the median over its other arms. Without one, the plan's
declared ``sd_guess``; without that, the effect is unknown and the lines say
how to declare one.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from harness.campaign.plan import Plan
from harness.errors import HarnessError
from harness.stats import sd_from_pilot
from harness.stats.design import Hypotheses
from harness.stats.plan_power import power_lines
from harness.store import tracking
from harness.store.schema import CAMPAIGN_TAG, SUPERSEDED_TAG
from harness.store.sqlite import store_to_read


def plan_power(plan: Plan) -> list[str]:
    """The dry-run's lines on power for ``plan`` (see the module docstring)."""
    hypotheses = plan.hypotheses or Hypotheses(base=plan.variants[0], declared=False)
    sd, source = earlier_spread(plan, hypotheses)
    if sd is None and hypotheses.sd_guess is not None:
        sd, source = hypotheses.sd_guess, "the plan's declared sd_guess"
    return power_lines(hypotheses, len(plan.seeds), len(plan.datasets), sd,
                       source if sd is not None else "no earlier campaign on these datasets in the store and no "
                                                     "sd_guess declared")


def earlier_spread(plan: Plan, hypotheses: Hypotheses) -> tuple[float | None, str]:
    """The sd of an earlier campaign's paired differences on the plan's datasets, and where it came from."""
    uri = plan.cells[0].config.tracking_uri
    metric = hypotheses.metrics[0]
    try:
        if not store_to_read(uri):  # no store, or an empty file: nothing earlier, and nothing written
            return None, ""
        runs = tracking.find_runs(uri, sorted({c.config.resolved().experiment for c in plan.cells}),
                                  status="FINISHED")
    except HarnessError:
        return None, ""
    # campaign -> variant -> dataset -> {seed: value}, newest first (the first value of a cell is kept)
    found: dict[str, dict[str, dict[str, dict[int, float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(dict)))
    for run in runs:
        name, dataset = run.tags.get(CAMPAIGN_TAG), run.params.get("data_name") or run.params.get("dataset")
        if (not name or name == plan.name or SUPERSEDED_TAG in run.tags or dataset not in plan.datasets
                or metric not in run.metrics or "seed" not in run.params):
            continue
        variant = run.tags.get("variant") or run.params.get("variant")
        found[name][variant][dataset].setdefault(int(run.params["seed"]), run.metrics[metric])
    for name, arms in found.items():  # newest campaign first
        base = arms.get(hypotheses.base)
        if not base:
            continue
        control = hypotheses.control if hypotheses.control in arms else None
        sds = {}
        for arm in ([control] if control else [a for a in arms if a != hypotheses.base]):
            try:
                sds[arm] = sd_from_pilot(dict(base), dict(arms[arm]))
            except HarnessError:
                continue
        if sds:
            which = f"its control {control}" if control else f"the median over {len(sds)} arm(s)"
            return statistics.median(sds.values()), (f"campaign {name!r} in the store, {which} against "
                                                     f"{hypotheses.base}, {metric}")
    return None, ""
