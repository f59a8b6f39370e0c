"""Where each cell of a campaign stands, read from MLflow (the runs) and the queue (who holds what).

A cell is FINISHED when a FINISHED run of it carries the cell's current
settings; CHANGED when its finished run was made with other settings (the
plan changed since); RUNNING, KILLED or FAILED as its newest run; MISSING
when it has no run yet. Runs superseded by ``--rerun-changed`` are tagged and
left out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from harness.store import tracking
from harness.campaign.plan import CELL_TAG, HASH_TAG, SETTINGS_TAG, TAG, Cell, Plan

SUPERSEDED_TAG = "campaign.superseded"


@dataclass
class CellState:
    """One cell's status and the run that decides it."""

    cell: Cell
    status: str  # FINISHED | CHANGED | RUNNING | KILLED | FAILED | MISSING
    run: Any = None  # the MLflow run (newest of the cell), if any
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # CHANGED: setting -> (was, now)

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.run.data.metrics) if self.run is not None else {}

    @property
    def minutes(self) -> float | None:
        info = self.run.info if self.run is not None else None
        if info is None or not info.end_time:
            return None
        return (info.end_time - info.start_time) / 60000


def campaign_runs(plan: Plan) -> list:
    """Every run of ``plan``'s campaign in its experiments (superseded ones left out)."""
    experiments = sorted({cell.config.resolved().experiment for cell in plan.cells})
    uri = plan.cells[0].config.tracking_uri
    return [r for r in tracking.find_runs(uri, experiments, tags={TAG: plan.name})
            if SUPERSEDED_TAG not in r.data.tags]


def cell_states(plan: Plan, runs: list | None = None) -> list[CellState]:
    """Each cell of ``plan`` with its status, in the plan's order."""
    runs = campaign_runs(plan) if runs is None else runs
    by_cell: dict[str, list] = {}
    for run in runs:  # newest first
        by_cell.setdefault(run.data.tags.get(CELL_TAG), []).append(run)
    states = []
    for cell in plan.cells:
        found = by_cell.get(cell.key, [])
        finished = [r for r in found if r.info.status == "FINISHED"]
        same = [r for r in finished if r.data.tags.get(HASH_TAG) == cell.settings_md5]
        if same:
            states.append(CellState(cell, "FINISHED", same[0]))
        elif finished:
            states.append(CellState(cell, "CHANGED", finished[0], _changes(finished[0], cell)))
        elif found:
            states.append(CellState(cell, found[0].info.status, found[0]))
        else:
            states.append(CellState(cell, "MISSING"))
    return states


def _changes(run, cell: Cell) -> dict[str, tuple[Any, Any]]:
    try:
        before = json.loads(run.data.tags.get(SETTINGS_TAG, "{}"))
    except json.JSONDecodeError:
        before = {}
    now = cell.settings
    return {k: (before.get(k), now.get(k)) for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)}


def seconds_per_image_epoch(states: list[CellState]) -> float | None:
    """Measured wall time per trained image-epoch (training, evaluation and logging included),
    from this campaign's finished cells; None before the first one."""
    spent = images = 0.0
    for state in states:
        if state.status == "FINISHED" and state.minutes:
            params = state.run.data.params
            count = float(params.get("data_count", "nan")) * float(params.get("epochs", "nan"))
            if math.isfinite(count) and count > 0:
                spent += state.minutes * 60
                images += count
    return spent / images if images else None


def cell_work(cell: Cell, images: int) -> float:
    """Image-epochs a cell trains: its images (after max_images) times its epochs."""
    config = cell.config.resolved()
    return min(images, config.max_images or images) * config.epochs


def eta_seconds(states: list[CellState], workers: int = 1) -> float | None:
    """Seconds left for the cells not finished, at the measured time per image-epoch; None
    before the first cell finishes. A cell's images: a finished cell of its dataset says how
    many; else the plan's max_images; else the mean of the datasets measured."""
    rate = seconds_per_image_epoch(states)
    if rate is None:
        return None
    known = {s.cell.dataset: int(s.run.data.params.get("data_count", 0)) for s in states if s.status == "FINISHED"}
    mean = sum(known.values()) // max(len(known), 1)
    left = [s.cell for s in states if s.status != "FINISHED"]
    work = sum(cell_work(cell, known.get(cell.dataset) or cell.config.max_images or mean) for cell in left)
    return work * rate / max(workers, 1)
