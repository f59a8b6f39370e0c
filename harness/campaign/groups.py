"""Seed groups: one MLflow parent run per (campaign, dataset, variant), its seed runs as children.

So the MLflow UI compares arms rather than seeds: each group run holds, for
every final metric all its seeds logged, ``<metric>_mean``, ``<metric>_std``
(sample sd), ``<metric>_ci_low`` / ``<metric>_ci_high`` (the 95% t interval of
the mean) and ``<metric>_n``. Written when a campaign finishes, from the
newest finished run of each planned cell with the plan's settings; rewriting
is idempotent (the group run is found by its tag and its values logged again,
at the same step). A group with fewer than two seeds gets n and the mean only.
"""

from __future__ import annotations

import math
from collections import defaultdict

from harness.campaign.plan import Plan
from harness.store import schema, tracking
from harness.store.schema import (
    CAMPAIGN_TAG,
    CELL_TAG,
    HASH_TAG,
    IN_GROUP_TAG,
    PARENT_RUN_TAG,
    SEED_GROUP_TAG,
    SUPERSEDED_TAG,
)

LEVEL = 0.95


def seed_summary(values: list[float]) -> dict[str, float]:
    """n, mean, and (n >= 2) sample std and the 95% t interval of the mean of ``values``."""
    from scipy import stats

    n = len(values)
    mean = math.fsum(values) / n
    out = {"n": float(n), "mean": mean}
    if n >= 2:
        sd = float(stats.tstd(values))
        half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * sd / math.sqrt(n)
        out.update(std=sd, ci_low=mean - half, ci_high=mean + half)
    return out


def write_seed_groups(plan: Plan, uri: str) -> dict[str, str]:
    """Write (or rewrite) every group of ``plan`` that has a finished cell; returns key -> group run id."""
    cells = {c.key: c for c in plan.cells}
    experiments = sorted({c.config.resolved().experiment for c in plan.cells})
    members: dict[tuple[str, str, str], list] = defaultdict(list)  # (experiment, dataset, variant) -> runs
    seen = set()
    for run in tracking.find_runs(uri, experiments, tags={CAMPAIGN_TAG: plan.name}, status="FINISHED"):
        cell = cells.get(run.tags.get(CELL_TAG, ""))
        if cell is None or SUPERSEDED_TAG in run.tags or run.tags.get(HASH_TAG) != cell.settings_md5:
            continue
        if cell.key not in seen:  # newest first: the cell's newest finished run
            seen.add(cell.key)
            members[(cell.config.resolved().experiment, cell.dataset, cell.variant)].append(run)
    groups = {}
    for (experiment, dataset, variant), runs in members.items():
        key = f"{plan.name}/{dataset}/{variant}"
        group = schema.open_parent(uri, experiment, f"{plan.name}-{dataset}-{variant}", {SEED_GROUP_TAG: key})
        logger = tracking.RunLogger(uri, group)
        metrics = sorted(set.intersection(*(set(r.metrics) for r in runs)))
        summary = {}
        for metric in metrics:
            values = [r.metrics[metric] for r in runs]
            if all(math.isfinite(v) for v in values):
                summary.update({f"{metric}_{k}": v for k, v in seed_summary(values).items()})
        # Tags, not params: a rerun with more finished seeds rewrites them (params cannot change).
        logger.set_tags({CAMPAIGN_TAG + ".of": plan.name, "dataset": dataset, "variant": variant,
                         "seeds": ",".join(sorted((r.params.get("seed", "?") for r in runs), key=str))})
        logger.log_metrics(summary, step=0)
        for run in runs:
            tracking.RunLogger(uri, run.run_id).set_tags({PARENT_RUN_TAG: group, IN_GROUP_TAG: key})
        logger.end("FINISHED")
        groups[key] = group
    return groups
