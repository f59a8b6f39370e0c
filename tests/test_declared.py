"""A campaign's declaration: the plan's git record on its parent run, and the report's line about it."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime

import pytest

from harness.campaign.declared import plan_history
from harness.store import schema
from reports.campaign import Campaign, declared_text
from reports.collect import RunRecord


def _git(folder, *args):
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
                        "GIT_COMMITTER_EMAIL": "a@b", "GIT_COMMITTER_DATE": "2026-01-02T03:04:05+01:00",
                        "GIT_AUTHOR_DATE": "2026-01-02T03:04:05+01:00", "HOME": str(folder),
                        "PATH": os.environ.get("PATH", "/usr/bin:/bin")})


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "campaigns").mkdir()
    plan = tmp_path / "campaigns" / "p.toml"
    plan.write_text('name = "p"\n')
    _git(tmp_path, "add", "campaigns/p.toml")
    _git(tmp_path, "commit", "-qm", "declare p")
    return plan


def test_a_committed_plan_is_tagged_with_its_first_commit_and_time(repo):
    first = subprocess.run(["git", "-C", str(repo.parent), "rev-parse", "HEAD"], capture_output=True,
                           text=True).stdout.strip()
    repo.write_text('name = "p"\nseeds = [3]\n')
    _git(repo.parent.parent, "commit", "-qam", "amend p")  # a later commit: the first one still counts
    last = subprocess.run(["git", "-C", str(repo.parent), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    tags = plan_history(repo)
    assert tags == {schema.PLAN_PATH_TAG: "campaigns/p.toml", schema.PLAN_FIRST_COMMIT_TAG: first,
                    schema.PLAN_FIRST_COMMITTED_TAG: "2026-01-02T02:04:05+00:00",
                    schema.PLAN_LAST_COMMIT_TAG: last, schema.PLAN_LAST_COMMITTED_TAG: "2026-01-02T02:04:05+00:00"}
    assert first != last


def test_a_plan_changed_or_never_committed_is_tagged_as_run_uncommitted(repo):
    repo.write_text('name = "p"\nseeds = [4]\n')
    assert schema.PLAN_UNCOMMITTED_TAG in plan_history(repo)
    new = repo.parent / "q.toml"
    new.write_text('name = "q"\n')
    tags = plan_history(new)
    assert schema.PLAN_FIRST_COMMIT_TAG not in tags and schema.PLAN_UNCOMMITTED_TAG in tags


def test_outside_git_nothing_is_tagged(tmp_path):
    (tmp_path / "p.toml").write_text('name = "p"\n')
    assert plan_history(tmp_path / "p.toml") == {}


def _record(start: str, tags=None) -> RunRecord:
    ms = int(datetime.fromisoformat(start).timestamp() * 1000)
    return RunRecord(run_id="r", run_name="r", experiment="e", status="FINISHED", start_time=ms, dataset="horses",
                     variant="bn", seed=3, axes={}, setting=(), eval_key=None, metrics={}, tags=tags or {})


def _campaign(committed: str, starts: list[str], **extra) -> Campaign:
    tags = {schema.PLAN_PATH_TAG: "campaigns/p.toml", schema.PLAN_FIRST_COMMIT_TAG: "abcdef0123456789",
            schema.PLAN_FIRST_COMMITTED_TAG: committed, **extra}
    return Campaign(name="p", parent=_record("2026-01-01T00:00:00+00:00", tags),
                    runs=[_record(s) for s in starts])


def test_the_report_says_whether_the_plan_predates_every_run():
    before = declared_text(_campaign("2026-01-02T02:04:05+00:00",
                                     ["2026-01-03T00:00:00+00:00", "2026-01-02T05:00:00+00:00"]))
    assert ("`campaigns/p.toml` was first committed at 2026-01-02T02:04:05+00:00 (commit abcdef0123), before the "
            "first run started (2026-01-02T05:00:00+00:00): its git history is the campaign's pre-registration"
            ) in before
    after = declared_text(_campaign("2026-01-02T02:04:05+00:00", ["2026-01-02T01:00:00+00:00"]))
    assert "after the first run started (2026-01-02T01:00:00+00:00): it is not a pre-registration" in after
    edited = declared_text(_campaign("2026-01-02T02:04:05+00:00", ["2026-01-03T00:00:00+00:00"],
                                     **{schema.PLAN_LAST_COMMIT_TAG: "fedcba9876543210",
                                        schema.PLAN_LAST_COMMITTED_TAG: "2026-01-05T00:00:00+00:00"}))
    assert ("It was changed after that (last commit fedcba9876 at 2026-01-05T00:00:00+00:00): what was "
            "declared is the plan as committed before 2026-01-03T00:00:00+00:00") in edited
    dirty = declared_text(_campaign("2026-01-02T02:04:05+00:00", ["2026-01-03T00:00:00+00:00"],
                                    **{schema.PLAN_UNCOMMITTED_TAG: "2026-01-04T00:00:00+00:00"}))
    assert "run at 2026-01-04T00:00:00+00:00 with changes to the plan not in any commit" in dirty
    assert declared_text(Campaign(name="p", runs=[])).startswith("Declaration: unknown")
