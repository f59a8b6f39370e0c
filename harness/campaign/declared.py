"""Whether a campaign was declared before it ran: its plan file's git record.

A plan committed before its first run is a pre-registration: its git
history shows the question, arms, seeds and hypotheses as they were before
any result existed. At each start a campaign tags its parent run with the
commits that first added and last changed the plan file and their times,
and, when the plan it read differs from the committed one (or was never
committed), the time it first ran so. The report compares these with its runs' start times.
Outside a git repository, or without git, nothing is tagged and the report
says the plan's history is unknown.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from harness.store import schema


def plan_history(path: str | Path) -> dict[str, str]:
    """``path``'s git record as parent-run tags ({} outside git): see the module docstring."""
    path = Path(path).resolve()
    added = _git(path.parent, "log", "--diff-filter=A", "--follow", "--format=%H %cI", "--", path.name)
    if added is None:
        return {}
    tags = {schema.PLAN_PATH_TAG: _relative(path)}
    if added:
        commit, when = added.splitlines()[-1].split(" ", 1)  # the oldest commit adding it
        tags[schema.PLAN_FIRST_COMMIT_TAG] = commit
        tags[schema.PLAN_FIRST_COMMITTED_TAG] = _utc(when)
        last = _git(path.parent, "log", "-1", "--format=%H %cI", "--", path.name)
        if last:
            commit, when = last.split(" ", 1)
            tags[schema.PLAN_LAST_COMMIT_TAG] = commit
            tags[schema.PLAN_LAST_COMMITTED_TAG] = _utc(when)
    changed = _git(path.parent, "status", "--porcelain", "--", path.name)
    if changed:  # modified or untracked: this run's plan is not (yet) any commit's
        tags[schema.PLAN_UNCOMMITTED_TAG] = datetime.now(UTC).isoformat(timespec="seconds")
    return tags


def _git(where: Path, *args: str) -> str | None:
    """git's stdout (stripped), or None when ``where`` is not in a repository or git is missing."""
    try:
        done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _relative(path: Path) -> str:
    top = _git(path.parent, "rev-parse", "--show-toplevel")
    try:
        return str(path.relative_to(top)) if top else str(path)
    except ValueError:
        return str(path)


def _utc(stamp: str) -> str:
    return datetime.fromisoformat(stamp).astimezone(UTC).isoformat(timespec="seconds")
