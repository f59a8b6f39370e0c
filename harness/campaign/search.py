"""A tuned plan's two halves: the search (each arm's trials) and the confirmation (its cells).

The search is itself a campaign, named ``<name>:search`` (a plan name cannot
hold ':'), whose cells are the trials ``dataset/variant/tNNN``: each trial is
one run with its drawn settings on a tuning seed, queued, claimed, resumed and
recognised as done exactly like a cell. Its runs carry ``campaign=<name>:search``,
so the campaign's own report, ablation and status see the confirmation cells
only. When every trial of an arm has finished (or failed), the arm's winner
is its best finished trial by the plan's metric (ties: the lower trial
number), and the confirmation cells are the plan's cells with the winner's
settings, tagged with the trial they came from.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from harness.campaign.plan import Cell, Plan, tagged
from harness.campaign.state import CellState, cell_states
from harness.store.schema import SEARCH_SUFFIX, SEARCH_TAG, TRIAL_TAG, WINNER_TAG
from harness.store.schema import TUNING_METRIC_TAG as METRIC_TAG


@dataclass(frozen=True)
class Trial(Cell):
    """One trial of an arm's search: a run with drawn settings on a tuning seed."""

    number: int = 0
    params: tuple[tuple[str, Any], ...] = ()  # the drawn search parameters (beta_1, not the two fields)

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.variant}/t{self.number:03d}"


@dataclass(frozen=True)
class Winner:
    """An arm's best trial."""

    trial: Trial
    value: float
    run_id: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.trial.params)


def arms(plan: Plan) -> list[tuple[str, str]]:
    return [(d, v) for d in plan.datasets for v in plan.variants]


def search_plan(plan: Plan) -> Plan:
    """The campaign of ``plan``'s trials: every arm, trials 0 .. trials-1, the same draws for each arm."""
    tuning = plan.tuning
    name = plan.name + SEARCH_SUFFIX
    draws = tuning.draws()
    trials = []
    for dataset, variant in arms(plan):
        base = next(c for c in plan.cells if c.dataset == dataset and c.variant == variant).config
        for number, params in enumerate(draws):
            length = {"epochs": tuning.epochs} if tuning.epochs else {}
            config = base.replace(**tuning.fields(params), **length, seed=tuning.seed_of(number), tags={})
            trial = Trial(dataset, variant, config.seed, config, number, tuple(sorted(params.items())))
            trials.append(tagged(trial, name, f"{name}-{dataset}-{variant}-t{number:03d}",
                                 **{SEARCH_TAG: plan.name, TRIAL_TAG: str(number), METRIC_TAG: tuning.metric}))
    return dataclasses.replace(plan, name=name, cells=tuple(trials), seeds=tuning.seeds, notes=(),
                               hypotheses=None, tuning=None)


def trial_value(state: CellState, metric: str) -> float | None:
    """A finished trial's score, or None (not finished, or no finite score logged)."""
    value = state.metrics.get(metric) if state.status == "FINISHED" else None
    return value if value is not None and math.isfinite(value) else None


def winners(plan: Plan, states: list[CellState] | None = None) -> tuple[dict[tuple[str, str], Winner], list[str]]:
    """Each arm whose search is over -> its winner; and a line for each arm without one yet."""
    tuning = plan.tuning
    states = cell_states(search_plan(plan)) if states is None else states
    sign = 1.0 if tuning.lower_is_better else -1.0
    won, pending = {}, []
    for dataset, variant in arms(plan):
        mine = [s for s in states if (s.cell.dataset, s.cell.variant) == (dataset, variant)]
        left = [s for s in mine if s.status not in ("FINISHED", "FAILED")]
        scored = [(sign * v, s.cell.number, s) for s in mine if (v := trial_value(s, tuning.metric)) is not None]
        if left:
            pending.append(f"arm {dataset}/{variant}: {len(left)} of {len(mine)} trials not finished")
        elif not scored:
            pending.append(f"arm {dataset}/{variant}: no trial finished with a {tuning.metric}; every one FAILED "
                           "(--retry-failed runs them again)")
        else:
            _, _, best = min(scored, key=lambda x: x[:2])
            won[(dataset, variant)] = Winner(best.cell, best.metrics[tuning.metric], best.run.run_id)
    return won, pending


def confirmed_plan(plan: Plan, won: dict[tuple[str, str], Winner]) -> Plan:
    """``plan`` with the cells of the arms in ``won``, each trained with its arm's winning settings."""
    cells = []
    for cell in plan.cells:
        winner = won.get((cell.dataset, cell.variant))
        if winner is None:
            continue
        config = cell.config.replace(**plan.tuning.fields(winner.params))
        cells.append(tagged(dataclasses.replace(cell, config=config), plan.name, cell.config.run_name,
                            **{WINNER_TAG: winner.trial.key}))
    return dataclasses.replace(plan, cells=tuple(cells))


def params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items()))
