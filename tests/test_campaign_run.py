"""Real tiny campaigns: every cell once, resumed and retried as asked, on one machine and on two
workers sharing a PostgreSQL queue, one of them killed mid-cell."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from workers import second_finishes_after_first_is_killed

from harness import cli
from harness.campaign.plan import load_plan
from harness.campaign.state import SUPERSEDED_TAG
from harness.store import tracking
from harness.train import checkpoints

pytestmark = pytest.mark.slow

PLAN = """
name = "{name}"
datasets = ["horses"]
seeds = [0, 1]
variants = ["animals_baseline", "bn"]
[run]
epochs = {epochs}
max_images = 64
batch_size = 32
width = 0.125
xla = "off"
eval_every = 0
"""


def runs_of(uri: str, name: str) -> list:
    return [r for r in tracking.find_runs(uri, "horses", tags={"campaign": name})
            if SUPERSEDED_TAG not in r.tags]


def campaign(path: Path, uri: str, tmp_path: Path, *extra: str) -> int:
    return cli.main(["campaign", str(path), "--tracking-uri", uri, "--checkpoint-dir", str(tmp_path / "ck"), *extra])


def test_a_campaign_runs_each_cell_once_then_resumes_retries_and_refuses_changes(tracking_uri, tmp_path,
                                                                                data_root, capsys):
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(name="c1", epochs=1))
    plan = load_plan(path, tracking_uri=tracking_uri, checkpoint_dir=str(tmp_path / "ck"))
    # A cell whose earlier run FAILED is left alone unless asked.
    failed = plan.cells[-1]
    logger = tracking.RunLogger.create(tracking_uri, "horses", tags=failed.config.tags)
    logger.end("FAILED", reason="diverged")

    assert campaign(path, tracking_uri, tmp_path) == 0
    out = capsys.readouterr().out
    assert "1 FAILED left alone (--retry-failed retries them)" in out
    finished = [r for r in runs_of(tracking_uri, "c1") if r.status == "FINISHED"]
    assert sorted(r.tags["campaign.cell"] for r in finished) == sorted(c.key for c in plan.cells[:-1])
    assert "3 finished, 1 failed" in out and "cell horses/bn/s0 FINISHED" in out

    # Again: nothing left to train, nothing trained.
    assert campaign(path, tracking_uri, tmp_path) == 0
    assert len(runs_of(tracking_uri, "c1")) == 4
    assert campaign(path, tracking_uri, tmp_path, "--retry-failed") == 0
    statuses = sorted(r.status for r in runs_of(tracking_uri, "c1"))
    assert statuses == ["FAILED", "FINISHED", "FINISHED", "FINISHED", "FINISHED"]

    # The status grid, from another command.
    capsys.readouterr()
    assert campaign(path, tracking_uri, tmp_path, "--status") == 0
    assert "4 cells: 4 finished; all finished" in capsys.readouterr().out

    # A changed plan never reuses the old results silently.
    path.write_text(PLAN.format(name="c1", epochs=2))
    assert campaign(path, tracking_uri, tmp_path) == 2
    err = capsys.readouterr().err
    assert "4 cell(s) of the plan changed" in err and "epochs: was 1, now 2" in err and "--rerun-changed" in err
    assert campaign(path, tracking_uri, tmp_path, "--dry-run") == 0
    assert "4 of 4 cells to run" in capsys.readouterr().out
    assert campaign(path, tracking_uri, tmp_path, "--rerun-changed") == 0
    current = [r for r in runs_of(tracking_uri, "c1") if r.status == "FINISHED"]
    assert len(current) == 4 and {r.params["epochs"] for r in current} == {"2"}
    parent = tracking.find_runs(tracking_uri, "campaigns", tags={"campaign": "c1"})
    assert len(parent) == 1
    assert {a.path for a in tracking.client(tracking_uri).list_artifacts(parent[0].run_id)} >= {
        "plan.toml", "cells.json"}


def test_two_workers_share_a_postgres_queue_and_finish_a_killed_workers_cell(postgres_url, tmp_path, data_root):
    name = f"pg{uuid.uuid4().hex[:6]}"
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(name=name, epochs=3))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # Kill the first worker once it has checkpointed an epoch of a cell, mid-cell.
    second_finishes_after_first_is_killed(path, uri, postgres_url, tmp_path, "epoch 1/3", 300, 600)

    runs = runs_of(uri, name)
    cells = sorted(r.tags["campaign.cell"] for r in runs)
    assert cells == sorted(c.key for c in load_plan(path).cells)  # every cell exactly once
    assert {r.status for r in runs} == {"FINISHED"}  # nothing left RUNNING
    client = tracking.client(uri)
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.run_id, "d_loss")]
        assert steps == [1, 2, 3]  # no epoch logged twice, none lost
    log = (tmp_path / "second.log").read_text()
    assert "resuming run" in log  # the killed cell went on from its checkpoint
    assert not checkpoints.list_checkpoints(tmp_path / "ck" / runs[0].run_id)  # cleaned once logged
