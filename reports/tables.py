"""The report's tables as plain data: columns, rows and the cells marked best.

Renderers (``reports.render``) turn a ``Table`` into Markdown, CSV, LaTeX or
HTML; nothing here formats numbers. A missing value is ``None`` and stays
missing in every format (never a zero).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from reports.collect import RunRecord
from reports.study_store import StudyRecord


@dataclass(frozen=True)
class Column:
    """One column: ``kind`` is text, int, float, mean_std (``key`` and ``key_std``), p or runs."""

    key: str
    label: str
    kind: str = "text"
    better: str | None = None  # "min" or "max": the best cell per group is marked


@dataclass
class Table:
    """Rows of dicts keyed by column key; ``group`` names the key whose rows are compared."""

    name: str  # file stem for the CSV
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    group: str | None = None
    note: str = ""

    def best(self) -> set[tuple[int, str]]:
        """(row index, column key) of the best cell of each marked column within each group."""
        marked: set[tuple[int, str]] = set()
        groups: dict[Any, list[int]] = defaultdict(list)
        for i, row in enumerate(self.rows):
            groups[row.get(self.group) if self.group else None].append(i)
        for column in self.columns:
            if column.better is None:
                continue
            for indices in groups.values():
                values = [(self.rows[i].get(column.key), i) for i in indices]
                values = [(v, i) for v, i in values if _finite(v)]
                if len(values) < 2:  # one cell is not a comparison
                    continue
                pick = min if column.better == "min" else max
                target = pick(v for v, _ in values)
                marked.update((i, column.key) for v, i in values if v == target)
        return marked


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- which runs are aggregated -----------------------------------------------------------
@dataclass
class Selection:
    """Runs split into those aggregated and those left out (with why)."""

    included: list[RunRecord]
    excluded: list[tuple[RunRecord, str]]
    trials: list[RunRecord]  # runs of Optuna studies (parents and trials): in the study table


def select(runs: list[RunRecord]) -> Selection:
    """Keep FINISHED top-level runs, the newest run per (setting, variant, dataset, seed).

    Failed, killed and unfinished runs are excluded with their status and
    reason; a seed run again keeps only its newest finished run. Runs of
    Optuna studies tune hyperparameters by design, so they are set apart
    (the study table counts their outcomes) rather than averaged here.
    """
    included, excluded, trials = [], [], []
    seen: set[tuple] = set()
    for run in runs:  # newest first
        if run.nested or "optuna.study_name" in run.tags:
            trials.append(run)
        elif run.status != "FINISHED":
            excluded.append((run, run.status.lower() + (f": {run.reason}" if run.reason else "")))
        elif run.dataset is None or run.variant is None:
            excluded.append((run, "no dataset or variant logged (not a harness training run)"))
        else:
            key = (run.eval_key, run.dataset, run.variant, run.setting, tuple(run.axes.items()), run.seed)
            if key in seen:
                excluded.append((run, "superseded by a newer finished run of the same seed"))
            else:
                seen.add(key)
                included.append(run)
    return Selection(included, excluded, trials)


def eval_label(key: tuple[str, str, str] | None) -> str:
    """How FID/KID/IS were computed, in words."""
    if key is None:
        return "not evaluated"
    backbone, n_real, n_fake = key
    return f"{backbone}, {n_real} real / {n_fake} fake"


# --- variant x dataset ----------------------------------------------------------------------
VARIANT_COLUMNS = [
    Column("dataset", "dataset"),
    Column("variant", "variant"),
    Column("n", "n", "int"),
    Column("epochs", "epochs", "int"),
    Column("fid", "FID", "mean_std", "min"),
    Column("kid", "KID", "mean_std", "min"),
    Column("is", "IS", "mean_std", "max"),
    Column("real_acc", "real acc", "mean_std"),
    Column("fake_acc", "fake acc", "mean_std"),
    Column("images_per_s", "images/s", "mean_std", "max"),
    Column("runs", "runs", "runs"),
]
AGGREGATED = ("fid", "kid", "is", "real_acc", "fake_acc", "images_per_s")


def variant_tables(runs: list[RunRecord]) -> list[Table]:
    """One variant x dataset table per evaluation setting (only equal settings side by side)."""
    by_eval: dict[Any, list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_eval[run.eval_key].append(run)
    tables = []
    for key in sorted(by_eval, key=lambda k: (k is None, k or ())):
        groups = group_runs(by_eval[key])
        rows = [_variant_row(label, dataset, members) for (dataset, label), members in groups.items()]
        rows.sort(key=lambda r: (r["dataset"], r["variant"]))
        suffix = "" if len(by_eval) == 1 else f"_{len(tables) + 1}"
        tables.append(Table(
            name=f"variants{suffix}",
            title=f"Variant x dataset (FID/KID/IS: {eval_label(key)})",
            columns=VARIANT_COLUMNS, rows=rows, group="dataset",
            note=("Final-epoch values, mean ± sample std over seeds (n runs). Best per dataset in bold "
                  "for FID, KID (lower), IS and images/s (higher); discriminator accuracies have no "
                  "better direction and are not marked. images/s is the last epoch's."),
        ))
    return tables


def group_runs(runs: list[RunRecord]) -> dict[tuple[str, str], list[RunRecord]]:
    """Runs by (dataset, row label); the label adds the params that tell settings apart."""
    by_setting: dict[tuple, list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_setting[(run.dataset, run.variant, run.setting, tuple(run.axes.items()))].append(run)
    # Within one (dataset, variant), name only the params that differ between its settings.
    settings: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for dataset, variant, setting, axes in by_setting:
        settings[(dataset, variant)].append(setting + axes)
    out: dict[tuple[str, str], list[RunRecord]] = {}
    for (dataset, variant, setting, axes), members in by_setting.items():
        label = variant
        siblings = settings[(dataset, variant)]
        if len(siblings) > 1:
            varying = sorted({k for s in siblings for k, v in s if any(dict(o).get(k) != v for o in siblings)})
            values = dict(setting + axes)
            label += " [" + ", ".join(f"{k}={values.get(k, '-')}" for k in varying) + "]"
        out[(dataset, label)] = members
    return out


def _variant_row(label: str, dataset: str, members: list[RunRecord]) -> dict[str, Any]:
    row: dict[str, Any] = {"dataset": dataset, "variant": label, "n": len(members)}
    epochs = {m.params.get("epochs") for m in members}
    row["epochs"] = int(epochs.pop()) if len(epochs) == 1 and None not in epochs else None
    for key in AGGREGATED:
        row[key], row[key + "_std"], row[key + "_n"] = mean_std([m.metrics.get(key) for m in members])
    row["runs"] = [m.run_id for m in sorted(members, key=lambda m: (m.seed is None, m.seed))]
    return row


def mean_std(values: list[float | None]) -> tuple[float | None, float | None, int]:
    """Mean and sample standard deviation (ddof 1) of the present values, and their count."""
    present = [float(v) for v in values if _finite(v)]
    if not present:
        return None, None, 0
    mean = statistics.fmean(present)
    std = statistics.stdev(present) if len(present) > 1 else None
    return mean, std, len(present)


# --- studies --------------------------------------------------------------------------------
PARAM_ORDER = ("g_lr", "d_lr", "beta_1", "g_beta_1", "d_beta_1", "epochs", "batch_size", "label_smoothing")


def study_table(studies: list[StudyRecord]) -> Table:
    """Per study (one class x variant): trial outcomes, best objective and its params."""
    names = {k for s in studies for k in s.best_params}
    params = [p for p in PARAM_ORDER if p in names] + sorted(names - set(PARAM_ORDER))
    columns = [
        Column("dataset", "dataset"), Column("variant", "variant"), Column("study", "study"),
        Column("objective", "objective"), Column("complete", "complete", "int"),
        Column("pruned", "pruned", "int"), Column("failed", "failed", "int"),
        Column("best_value", "best", "float"), Column("best_trial", "best trial", "int"),
        *[Column(p, p, "float") for p in params], Column("backbone", "FID backbone"),
    ]
    rows = []
    for s in sorted(studies, key=lambda s: (s.dataset or "", s.variant or "", s.name)):
        rows.append({"dataset": s.dataset, "variant": s.variant, "study": s.name,
                     "objective": f"{s.objective} ({'min' if s.direction == 'minimize' else 'max'})",
                     "complete": s.complete, "pruned": s.pruned, "failed": s.failed,
                     "best_value": s.best_value, "best_trial": s.best_trial,
                     **{p: s.best_params.get(p) for p in params},
                     "backbone": s.attrs.get("eval_backbone")})
    return Table(name="studies", title="Optuna studies", columns=columns, rows=rows,
                 note="Best complete trial per study and its params; trials counted by final state.")


# --- runs left out ---------------------------------------------------------------------------
def excluded_table(excluded: list[tuple[RunRecord, str]]) -> Table:
    """The runs not aggregated, with their status and why."""
    columns = [Column("run", "run", "runs"), Column("run_name", "name"), Column("experiment", "experiment"),
               Column("status", "status"), Column("dataset", "dataset"), Column("variant", "variant"),
               Column("seed", "seed", "int"), Column("why", "why")]
    rows = [{"run": [r.run_id], "run_name": r.run_name, "experiment": r.experiment, "status": r.status,
             "dataset": r.dataset, "variant": r.variant, "seed": r.seed, "why": why} for r, why in excluded]
    return Table(name="excluded_runs", title="Runs left out of the aggregates", columns=columns, rows=rows)


def runs_table(runs: list[RunRecord]) -> Table:
    """Every aggregated run: the ids that the other tables abbreviate."""
    columns = [Column("run_id", "run id"), Column("run_name", "name"), Column("experiment", "experiment"),
               Column("dataset", "dataset"), Column("variant", "variant"), Column("seed", "seed", "int"),
               Column("fid", "final FID", "float"), Column("eval", "FID/KID/IS computed with")]
    rows = [{"run_id": r.run_id, "run_name": r.run_name, "experiment": r.experiment, "dataset": r.dataset,
             "variant": r.variant, "seed": r.seed, "fid": r.metrics.get("fid"), "eval": eval_label(r.eval_key)}
            for r in sorted(runs, key=lambda r: (r.dataset, r.variant, r.seed is None, r.seed))]
    return Table(name="runs", title="Runs behind the numbers", columns=columns, rows=rows)
