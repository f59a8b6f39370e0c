"""Where each cell of a campaign stands, read from MLflow (the runs) and the queue (who holds what).

A cell is FINISHED when a trained run of it (``trained``: FINISHED with its
training metrics logged) carries the cell's current settings; CHANGED when
its trained run was made with other settings (the plan changed since);
RUNNING, KILLED or FAILED as its newest run, where a run FAILED by the
machine or the store rather than by training counts as KILLED (the next
campaign retries it); MISSING when it has no run yet. Runs superseded by
``--rerun-changed`` are tagged and left out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from harness.campaign.plan import Cell, Plan
from harness.store import schema, tracking
from harness.store.schema import CAMPAIGN_TAG as TAG
from harness.store.schema import (
    CELL_TAG,
    DATA_COUNT_PARAM,
    EPOCHS_PARAM,
    SETTINGS_TAG,
    SUPERSEDED_TAG,
    trained,  # noqa: F401  (the rule lives in the schema; the runner imports it here)
)
from harness.store.sqlite import store_to_read
from harness.store.tracking import StoredRun


@dataclass
class CellState:
    """One cell's status and the run that decides it."""

    cell: Cell
    status: str  # FINISHED | CHANGED | RUNNING | KILLED | FAILED | MISSING
    run: StoredRun | None = None  # the run that decides the status, if any
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # CHANGED: setting -> (was, now)

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.run.metrics) if self.run is not None else {}

    @property
    def minutes(self) -> float | None:
        return self.run.minutes if self.run is not None else None


def campaign_runs(plan: Plan) -> list[StoredRun]:
    """Every run of ``plan``'s campaign in its experiments (superseded ones left out)."""
    experiments = sorted({cell.config.resolved().experiment for cell in plan.cells})
    uri = plan.cells[0].config.tracking_uri
    if not store_to_read(uri):  # no store yet: no runs (and --status or --dry-run must not create one)
        return []
    return [r for r in tracking.find_runs(uri, experiments, tags={TAG: plan.name})
            if SUPERSEDED_TAG not in r.tags]


def cell_states(plan: Plan, runs: list[StoredRun] | None = None) -> list[CellState]:
    """Each cell of ``plan`` with its status, in the plan's order."""
    runs = campaign_runs(plan) if runs is None else runs
    by_cell: dict[str, list] = {}
    for run in runs:  # newest first
        by_cell.setdefault(run.tags.get(CELL_TAG), []).append(run)
    states = []
    for cell in plan.cells:
        status, run = schema.cell_status(by_cell.get(cell.key, []), cell.settings_md5)
        states.append(CellState(cell, status, run, _changes(run, cell) if status == "CHANGED" else {}))
    return states


def _changes(run: StoredRun, cell: Cell) -> dict[str, tuple[Any, Any]]:
    try:
        before = json.loads(run.tags.get(SETTINGS_TAG, "{}"))
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
            params = state.run.params
            count = float(params.get(DATA_COUNT_PARAM, "nan")) * float(params.get(EPOCHS_PARAM, "nan"))
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
    known = {s.cell.dataset: int(s.run.params.get(DATA_COUNT_PARAM, 0)) for s in states if s.status == "FINISHED"}
    mean = sum(known.values()) // max(len(known), 1)
    left = [s.cell for s in states if s.status != "FINISHED"]
    work = sum(cell_work(cell, known.get(cell.dataset) or cell.config.max_images or mean) for cell in left)
    return work * rate / max(workers, 1)
