"""A campaign's report: only its runs, where each planned cell stands, and what the numbers can say.

``read_campaign`` reads the runs tagged ``campaign=<name>`` in every
experiment, leaving out the runs a rerun replaced (tag
``campaign.superseded``) and the parent run, whose ``cells.json`` artifact
is the plan: one entry per (dataset, variant, seed) cell with its settings.
``scope`` turns that into the report's first section: the plan, the cells
finished / failed / missing, the FID backbone, and the limits of the
numbers. Only reads.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness.errors import TrackingError, unknown_name
from harness.measure.provenance import MIN_TEST_ACCURACY
from harness.store import schema, tracking
from harness.store.schema import CAMPAIGN_TAG as TAG
from harness.store.schema import CELL_TAG, SUPERSEDED_TAG
from reports import collect
from reports.collect import PARENT_TAG, RunRecord
from reports.render import Section
from reports.tables import Column, Table

# Cell states, as `campaign --status` names them, in the order they are counted.
STATES = ("finished", "changed", "running", "killed", "failed", "missing")
# Plan settings the scope names in words (cells.json holds them all).
SCOPE_SETTINGS = ("epochs", "max_images", "batch_size", "width", "image_size", "eval_samples", "backbone")


@dataclass
class Campaign:
    """One campaign as logged: its plan (from the parent run), its runs and each cell's state."""

    name: str
    runs: list[RunRecord]  # the cells' runs, newest first (superseded ones left out)
    parent: RunRecord | None = None
    cells: list[dict[str, Any]] = field(default_factory=list)  # cells.json: {"cell", "experiment", **settings}
    superseded: list[RunRecord] = field(default_factory=list)
    plan_error: str = ""  # why the plan could not be read, when it could not
    elsewhere: int = 0  # planned cells logging to experiments this report does not read (--experiment)
    hypotheses: dict[str, Any] | None = None  # hypotheses.json: the analysis the plan declared

    @property
    def datasets(self) -> list[str]:
        return self._listed("campaign.datasets", "dataset")

    @property
    def variants(self) -> list[str]:
        return self._listed("campaign.variants", "variant")

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self._listed("campaign.seeds", "seed")]

    def _listed(self, tag: str, key: str) -> list:
        """The plan's values of ``key`` among its (read) cells, in the plan's order: the parent's tag
        gives the order, cells.json the values."""
        present = list(dict.fromkeys(str(c.get(key)) for c in self.cells))
        if self.parent is not None and self.parent.tags.get(tag):
            listed = self.parent.tags[tag].split(",")
            return [v for v in listed if v in present] if self.cells else listed
        return present

    def states(self) -> dict[str, str]:
        """Planned cell key -> state (see ``STATES``), in the plan's order."""
        by_cell: dict[str, list[RunRecord]] = defaultdict(list)
        for run in self.runs:  # newest first
            by_cell[run.tags.get(CELL_TAG, "")].append(run)
        out = {}
        for entry in self.cells:
            status, _ = schema.cell_status(by_cell.get(entry["cell"], []), settings_md5(entry))
            out[entry["cell"]] = status.lower()
        return out

    def outside(self) -> list[RunRecord]:
        """Runs of this campaign naming a cell its plan does not have."""
        planned = {entry["cell"] for entry in self.cells}
        return [r for r in self.runs if r.tags.get(CELL_TAG) not in planned] if self.cells else []


def settings_md5(entry: dict[str, Any]) -> str:
    """The ``campaign.settings_md5`` tag a run of this cells.json entry carries (as ``Cell.settings_md5``)."""
    return schema.settings_md5({k: v for k, v in entry.items() if k != "cell"})


def read_campaign(uri: str, name: str, experiments: dict[str, str]) -> Campaign:
    """Campaign ``name``'s runs in ``experiments`` (id -> name) and its plan (from its parent run).

    Raises ``ConfigError`` naming the campaigns there are when ``name`` has
    neither a parent run nor a run.
    """
    every = collect.experiments(uri)  # the parent sits in experiment 'campaigns', whatever --experiment says
    found = collect.collect_runs(uri, every, tags={TAG: name})
    parents = [r for r in found if r.campaign_parent]
    chosen = set(experiments.values())
    runs = [r for r in found if not r.campaign_parent and r.experiment in chosen]
    if not parents and not runs:
        known = {r.tags.get(TAG) for r in collect.collect_runs(uri, every, tags={PARENT_TAG: "true"})}
        raise unknown_name("campaign", name, sorted(k for k in known if k),
                           "Campaigns are named by `name` in their plan; run `python -m harness campaign "
                           "PLAN` first, or pass the --tracking-uri it logged to.")
    campaign = Campaign(name, runs=[r for r in runs if SUPERSEDED_TAG not in r.tags],
                        superseded=[r for r in runs if SUPERSEDED_TAG in r.tags],
                        parent=parents[0] if parents else None)
    if campaign.parent is None:
        campaign.plan_error = (f"no parent run of campaign {name!r} was found (experiment 'campaigns'), so its "
                               "plan is unknown: cells that never started cannot be counted")
        return campaign
    try:
        cells = list(tracking.read_json_artifact(uri, campaign.parent.run_id, "cells.json"))
        if not all(isinstance(c, dict) and "cell" in c for c in cells):
            raise TrackingError("cells.json holds no list of cells")
        # With --experiment, the plan's cells that log elsewhere are not this report's.
        campaign.cells = [c for c in cells if c.get("experiment") in chosen or "experiment" not in c]
        campaign.elsewhere = len(cells) - len(campaign.cells)
        campaign.hypotheses = _declared(uri, campaign.parent.run_id)
    except TrackingError:
        campaign.cells = []
        campaign.plan_error = (f"the parent run {campaign.parent.short_id} of campaign {name!r} has no readable "
                               "cells.json, so its plan is unknown: cells that never started cannot be counted")
    return campaign


def _declared(uri: str, parent_id: str) -> dict[str, Any] | None:
    """The parent run's hypotheses.json, or None (a plan logged before plans declared hypotheses)."""
    try:
        found = tracking.read_json_artifact(uri, parent_id, "hypotheses.json")
    except TrackingError:
        return None
    return found if isinstance(found, dict) else None


# --- the scope section ----------------------------------------------------------------------
def scope(campaign: Campaign, included: list[RunRecord]) -> Section:
    """The report's first section: the plan, how far it got, the backbone, and the limits."""
    states = campaign.states()
    counts = Counter(states.values())
    cells_line = (f"Cells: {len(states)} planned; " + ", ".join(f"{counts[s]} {s}" for s in STATES
                                                                 if counts[s] or s in ("finished", "failed",
                                                                                       "missing")) + "."
                  if campaign.cells else f"Cells: unknown ({campaign.plan_error}).")
    extra = campaign.outside()
    if extra:
        cells_line += f" {len(extra)} run(s) name cells outside the plan: they are in the tables, marked by name."
    if campaign.superseded:
        cells_line += (f" {len(campaign.superseded)} run(s) replaced by a rerun (tag {SUPERSEDED_TAG}) "
                       "were not read.")
    text = "\n\n".join([_plan_text(campaign, included), declared_text(campaign), cells_line,
                         _backbone_text(included)])
    return Section("Scope and limits", text=text, bullets=_limits(campaign, included, states),
                   tables=[cells_table(campaign, states)] if campaign.cells else [])


def _plan_text(campaign: Campaign, included: list[RunRecord]) -> str:
    datasets, variants, seeds = campaign.datasets, campaign.variants, campaign.seeds
    if not campaign.cells:
        seen = sorted({(r.dataset, r.variant) for r in campaign.runs if r.dataset and r.variant})
        return (f"Plan: unknown ({campaign.plan_error}). The runs found cover "
                f"{len({d for d, _ in seen})} dataset(s) and {len({v for _, v in seen})} variant(s).")
    values = {key: _setting(campaign.cells, key) for key in SCOPE_SETTINGS}
    used = sorted({r.params.get("data_count") for r in included if r.params.get("data_count")}, key=int)
    images = (f"at most {values['max_images']} images of each class" if values["max_images"] not in ("None", "")
              else "all images of each class")
    if used:
        images += f" ({' to '.join(dict.fromkeys([used[0], used[-1]]))} used)"
    return (f"Plan: {len(datasets)} dataset(s) ({', '.join(datasets)}) x {len(variants)} variant(s) "
            f"({', '.join(variants)}) x {len(seeds)} seed(s) ({', '.join(map(str, seeds))}) = "
            f"{len(campaign.cells)} cells. Each cell trains {values['epochs']} epoch(s) on {images}, batch "
            f"{values['batch_size']}, width {values['width']}, {values['image_size']} px; FID, KID and IS from "
            f"{values['eval_samples']} generated images with backbone {values['backbone']}."
            + (f" {campaign.elsewhere} more cell(s) of the plan log to experiments not read here (--experiment)."
               if campaign.elsewhere else "")
            + " The full settings of every cell are in the parent run's cells.json"
            + (f" (run {campaign.parent.run_id}, experiment {campaign.parent.experiment!r})."
               if campaign.parent else "."))


def declared_text(campaign: Campaign) -> str:
    """Whether the plan was committed to git before the campaign's first run (its parent's tags)."""
    tags = campaign.parent.tags if campaign.parent else {}
    path = tags.get(schema.PLAN_PATH_TAG)
    if not path:
        return ("Declaration: unknown (the campaign was not started from a plan in a git repository, so when "
                "its plan was written is not on record).")
    starts = [r.start_time for r in campaign.runs if r.start_time]
    first = _utc(min(starts)) if starts else None
    committed = tags.get(schema.PLAN_FIRST_COMMITTED_TAG)
    uncommitted = tags.get(schema.PLAN_UNCOMMITTED_TAG)
    if not committed:
        text = f"Declaration: `{path}` was not committed when the campaign ran; it is not a pre-registration."
    else:
        commit = tags.get(schema.PLAN_FIRST_COMMIT_TAG, "")[:10]
        text = f"Declaration: `{path}` was first committed at {committed} (commit {commit})"
        if first is None:
            text += "; no run has started yet."
        elif committed < first:
            text += (f", before the first run started ({first}): its git history is the campaign's "
                     "pre-registration.")
            changed = tags.get(schema.PLAN_LAST_COMMITTED_TAG)
            if changed and changed > first:
                text += (f" It was changed after that (last commit {tags.get(schema.PLAN_LAST_COMMIT_TAG, '')[:10]} "
                         f"at {changed}): what was declared is the plan as committed before {first} "
                         "(`git log` on the plan shows both).")
        else:
            text += f", after the first run started ({first}): it is not a pre-registration."
    if uncommitted:
        text += (f" The campaign was run at {uncommitted} with changes to the plan not in any commit: compare "
                 "the parent run's plan.toml with the plan's history.")
    return text


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _setting(cells: list[dict[str, Any]], key: str) -> str:
    """A plan setting in words: one value, or the value per dataset when the datasets differ."""
    by_dataset: dict[str, set[str]] = defaultdict(set)
    for entry in cells:
        by_dataset[str(entry.get("dataset"))].add(str(entry.get(key)))
    if len({v for values in by_dataset.values() for v in values}) == 1:
        return next(iter(next(iter(by_dataset.values()))))
    return "; ".join(f"{d}: {'/'.join(sorted(v))}" for d, v in by_dataset.items())


def _backbone_text(included: list[RunRecord]) -> str:
    """Which backbone file scored the runs, its accuracy, and whether it is good enough to read."""
    evaluated = [r for r in included if r.eval_key is not None]
    if not evaluated:
        return "FID backbone: no finished run of the campaign was evaluated, so there are no FIDs to compare."
    lines = []
    for label in dict.fromkeys(r.eval_label for r in evaluated):
        members = [r for r in evaluated if r.eval_label == label]
        warning = members[0].eval_warning
        quality = (f"below the {MIN_TEST_ACCURACY:.0%} quality floor: its FID, KID and IS say little (see the "
                   "warnings beside the tables)" if warning else
                   f"at or above the {MIN_TEST_ACCURACY:.0%} floor" if "test acc" in label else
                   "no quality floor applies")
        lines.append(f"{label} ({members[0].params.get('eval_backbone_settings', 'settings not recorded')}): "
                     f"{len(members)} run(s), {quality}")
    prefix = "FID backbone: " if len(lines) == 1 else "FID backbones (their values are never compared): "
    return prefix + "; ".join(lines) + "."


def _limits(campaign: Campaign, included: list[RunRecord], states: dict[str, str]) -> list[str]:
    """What the numbers can and cannot say, from the plan and what finished."""
    seeds = len(campaign.seeds) if campaign.cells else len({r.seed for r in included})
    classes = campaign.datasets if campaign.cells else sorted({r.dataset for r in included if r.dataset})
    epochs = _setting(campaign.cells, "epochs") if campaign.cells else "the logged"
    out = [
        "Can say, for each arm against the base: better, worse, equivalent (within the plan's margin) or "
        "inconclusive, on KID and FID at this budget, from tests of seeds paired within each class; declared "
        "comparisons Holm-adjusted together, the rest exploratory.",
        f"Can say, pooled: whether an arm moves KID or FID the same way on average over {', '.join(classes)} (each "
        "(class, seed) pair as a fraction of the base's mean on its class, so no class's scale dominates).",
        f"Cannot say how variants rank after longer training: every cell trained {epochs} epoch(s); FIDs "
        "early in training can reorder later.",
        "Cannot compare these FIDs with published ones or with another backbone or sample count: FID depends on "
        "both (and is biased upwards with few samples); only values in one table are comparable.",
        f"Cannot say whether a change helps classes outside {', '.join(classes)}: the pooled rows average over "
        "these classes only, and a change that helps one and hurts another pools to no effect (see the "
        "per-class rows).",
        "Cannot say how two changes combine: only variants that differ in one axis are compared, so "
        "interactions between axes are not estimated.",
    ]
    if seeds < 2:
        out.append(f"With {seeds} seed(s) per cell every comparison is inconclusive: a paired test needs 2+ seeds.")
    else:
        out.append(f"With {seeds} seeds per cell, a per-class verdict rests on {seeds} pairs: only a large, "
                   "consistent change can be shown (see Power); 'inconclusive' is not evidence of no effect.")
    lost = sum(s != "finished" for s in states.values())
    if lost:
        out.append(f"{lost} planned cell(s) did not finish: every comparison with an arm missing a cell is "
                   "inconclusive, naming the seed, rather than a number from fewer runs than planned.")
    return out


def cells_table(campaign: Campaign, states: dict[str, str]) -> Table:
    """The plan's grid: one row per (dataset, variant), one column per seed, and the finished count."""
    seeds = campaign.seeds
    columns = [Column("dataset", "dataset"), Column("variant", "variant"),
               *[Column(f"s{s}", f"seed {s}") for s in seeds], Column("n", "finished", "int"),
               Column("runs", "runs", "runs")]
    newest = {}
    for run in campaign.runs:  # newest first
        newest.setdefault(run.tags.get(CELL_TAG), run)
    rows = []
    for dataset in campaign.datasets:
        for variant in campaign.variants:
            keys = {s: f"{dataset}/{variant}/s{s}" for s in seeds}
            row: dict[str, Any] = {"dataset": dataset, "variant": variant}
            row.update({f"s{s}": states.get(key, "not planned") for s, key in keys.items()})
            row["n"] = sum(states.get(key) == "finished" for key in keys.values())
            row["runs"] = [newest[key].run_id for key in keys.values() if key in newest]
            rows.append(row)
    return Table(name="campaign_cells", title="Cells of the plan", columns=columns, rows=rows,
                 note=("A cell's state: finished (a finished run with the plan's settings), changed (finished "
                       "with other settings), running, killed or failed (its newest run), missing (no run). runs: "
                       "the newest run of each cell, by seed."))
