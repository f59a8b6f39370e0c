"""Seed groups in MLflow: a parent run per (campaign, dataset, variant) with mean, std, interval and n over
its seeds, the seed runs as its children; idempotent; reports still read the children as the campaign's runs."""

from __future__ import annotations

import numpy as np
from scipy import stats

from harness.campaign.groups import write_seed_groups
from harness.campaign.plan import load_plan
from harness.cli import main
from harness.store import tracking
from harness.store.schema import IN_GROUP_TAG, PARENT_RUN_TAG, SEED_GROUP_TAG

PLAN = """
name = "g"
datasets = ["horses"]
seeds = [0, 1, 2]
variants = ["animals_baseline", "bn"]
"""
KID = {"animals_baseline": [0.10, 0.12, 0.11], "bn": [0.08, 0.09, 0.07]}


def test_each_arm_has_a_parent_run_holding_its_seeds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "plan.toml").write_text(PLAN)
    plan = load_plan(tmp_path / "plan.toml", tracking_uri=uri)
    tracking.ensure_store(uri)
    ids = {}
    for cell in plan.cells:
        config = cell.config.resolved()
        logger = tracking.RunLogger.create(uri, config.experiment, tags={**config.tags, "variant": cell.variant})
        logger.log_params({"seed": cell.seed, "data_name": cell.dataset, "variant": cell.variant})
        logger.log_metrics({"kid": KID[cell.variant][cell.seed], "fid": 50.0 + cell.seed}, step=2)
        logger.end("FINISHED")
        ids[cell.key] = logger.run_id
    groups = write_seed_groups(plan, uri)
    assert write_seed_groups(plan, uri) == groups  # rerun: the same parent runs, rewritten
    assert set(groups) == {"g/horses/animals_baseline", "g/horses/bn"}
    for variant, values in KID.items():
        group = tracking.get_run(uri, groups[f"g/horses/{variant}"])
        assert group.tags[SEED_GROUP_TAG] == f"g/horses/{variant}" and group.status == "FINISHED"
        m = group.metrics
        low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
        assert (m["kid_n"], m["kid_mean"], m["kid_std"]) == (3, np.mean(values), np.std(values, ddof=1))
        assert (m["kid_ci_low"], m["kid_ci_high"]) == (low, high) and m["fid_mean"] == 51.0
        for seed in range(3):
            child = tracking.get_run(uri, ids[f"horses/{variant}/s{seed}"])
            assert child.tags[PARENT_RUN_TAG] == group.run_id and child.tags[IN_GROUP_TAG] == group.tags[SEED_GROUP_TAG]
    found = tracking.find_runs(uri, plan.cells[0].config.resolved().experiment, tags={SEED_GROUP_TAG: "g/horses/bn"})
    assert len(found) == 1
    # The full report still aggregates the seed runs (children of a group, not trials), and sets groups apart.
    assert main(["report", "--tracking-uri", uri, "--out", str(tmp_path / "r"), "--format", "md,csv"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "8 runs read: 6 aggregated, 0 left out, 2 parent run(s) of campaigns (plans and seed groups" in md
