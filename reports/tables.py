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

from harness.measure.provenance import EVAL_PARAMS, MIN_TEST_ACCURACY, quality_warning
from harness.store.schema import SEED_GROUP_TAG, SUPERSEDED_TAG
from reports.collect import RunRecord
from reports.study_store import StudyRecord


@dataclass(frozen=True)
class Column:
    """One column: ``kind`` is text, int, float, mean_std (``key`` and ``key_std``), p or runs."""

    key: str
    label: str
    kind: str = "text"
    better: str | None = None  # "min" or "max": the best cell per group is marked
    round_to: str | None = None  # a float cell is rounded to the precision of this row value (its spread)


# Means closer than this fraction are equal for the best-cell mark (below what any
# table shows at three significant digits).
MIN_RELATIVE_DIFFERENCE = 1e-3


@dataclass
class Table:
    """Rows of dicts keyed by column key; ``group`` names the key whose rows are compared.

    ``warning`` is shown beside the table (e.g. a backbone under the quality
    floor); ``empty`` says why a table has no rows and what would give some.
    """

    name: str  # file stem for the CSV
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    group: str | None = None
    note: str = ""
    warning: str = ""
    empty: str = ""

    def best(self) -> set[tuple[int, str]]:
        """(row index, column key) of the clearly best cell of each marked column within each group.

        Only ``mean_std`` columns are marked, and only when the best mean's
        interval (mean ± std) does not overlap any other row's interval and
        the means differ by more than ``MIN_RELATIVE_DIFFERENCE``: a difference
        inside the seeds' spread, or at the level of rounding noise (an IS
        pinned at 1.0000000 by a weak backbone), is no winner. Rows without a
        std (one seed) leave their group unmarked, since their spread is unknown.
        """
        marked: set[tuple[int, str]] = set()
        groups: dict[Any, list[int]] = defaultdict(list)
        for i, row in enumerate(self.rows):
            groups[row.get(self.group) if self.group else None].append(i)
        for column in self.columns:
            if column.better is None or column.kind != "mean_std":
                continue
            for indices in groups.values():
                cells = [(self.rows[i].get(column.key), self.rows[i].get(column.key + "_std"), i) for i in indices]
                cells = [(m, s, i) for m, s, i in cells if _finite(m)]
                if len(cells) < 2 or not all(_finite(s) for _, s, _ in cells):
                    continue
                sign = 1 if column.better == "min" else -1  # compare sign * mean: lower is better
                (m, s, i), *rest = sorted(cells, key=lambda c: sign * c[0])
                if all(sign * m + s < sign * o - t and abs(o - m) > MIN_RELATIVE_DIFFERENCE * max(abs(o), abs(m))
                       for o, t, _ in rest):
                    marked.add((i, column.key))
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
    backbones: list[RunRecord] = field(default_factory=list)  # trainings of the FID backbone
    campaigns: list[RunRecord] = field(default_factory=list)  # parent runs of campaigns (plan, no training)


def select(runs: list[RunRecord]) -> Selection:
    """Keep FINISHED top-level runs, the newest run per (setting, variant, dataset, seed).

    Failed, killed and unfinished runs are excluded with their status and
    reason; a seed run again keeps only its newest finished run. Runs of
    Optuna studies tune hyperparameters by design, so they are set apart
    (the study table counts their outcomes) rather than averaged here; runs
    that trained the FID backbone are no GAN runs and are set apart too, as
    are the parent runs of campaigns (they hold a plan). A campaign's run
    replaced by a rerun (tag ``campaign.superseded``) is excluded, saying so.
    """
    included, excluded, trials, backbones, campaigns = [], [], [], [], []
    seen: set[tuple] = set()
    for run in runs:  # newest first
        if run.backbone_training:
            backbones.append(run)
        elif run.campaign_parent or SEED_GROUP_TAG in run.tags:  # a plan, or a seed group's summary
            campaigns.append(run)
        elif run.nested or "optuna.study_name" in run.tags:
            trials.append(run)
        elif SUPERSEDED_TAG in run.tags:
            excluded.append((run, f"superseded in its campaign ({run.tags[SUPERSEDED_TAG]})"))
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
    return Selection(included, excluded, trials, backbones, campaigns)


def by_evaluation(runs: list[RunRecord]) -> list[list[RunRecord]]:
    """Runs grouped by how their FID/KID/IS were computed (provenance.EVAL_PARAMS), never mixed.

    Groups come in a stable order: evaluated ones by key, the unevaluated last.
    """
    groups: dict[Any, list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[run.eval_key].append(run)
    order = sorted(groups, key=lambda k: (k is None, tuple("" if v is None else v for v in k or ())))
    return [groups[k] for k in order]


def warnings_of(runs: list[RunRecord]) -> str:
    """The distinct quality warnings of ``runs``' evaluations, one per line."""
    return "\n".join(dict.fromkeys(r.eval_warning for r in runs if r.eval_warning))


# --- variant x dataset ----------------------------------------------------------------------
VARIANT_COLUMNS = [
    Column("dataset", "dataset"),
    Column("variant", "variant"),
    Column("n", "n", "int"),
    Column("epochs", "epochs", "int"),
    Column("fid", "FID", "mean_std", "min"),
    Column("fid_floor", "FID floor", "mean_std"),
    Column("kid", "KID", "mean_std", "min"),
    Column("kid_floor", "KID floor", "mean_std"),
    Column("precision", "precision", "mean_std"),
    Column("recall", "recall", "mean_std"),
    Column("density", "density", "mean_std"),
    Column("coverage", "coverage", "mean_std"),
    # For one class IS rewards spreading samples over the backbone's classes, not quality: never ranked.
    Column("is", "IS (unranked)", "mean_std"),
    Column("real_acc", "real acc", "mean_std"),
    Column("fake_acc", "fake acc", "mean_std"),
    Column("images_per_s", "images/s", "mean_std", "max"),
    Column("runs", "runs", "runs"),
]
AGGREGATED = ("fid", "fid_floor", "kid", "kid_floor", "precision", "recall", "density", "coverage", "is",
              "real_acc", "fake_acc", "images_per_s")
VARIANT_NOTE = ("Final-epoch values, mean ± sample std over seeds (n runs), both rounded to the std's first "
                "significant digit (its first two when they read 10 to 35). KID is the raw MMD² (not x1000). "
                "FID is at the eval_n_fake of the title's evaluation; a floor is the same metric for real training "
                "images against the reference at the same N (what 'as real' scores), none when the reference is "
                "the training images. Precision/recall (k=3) and density/coverage (k=5) at eval_n_curve samples. "
                "IS is shown but never ranked: for one class it rewards spreading samples over the backbone's "
                "classes. Bold: the best FID, KID (lower) or images/s (higher) of a dataset, only when its mean ± "
                "std interval does not overlap any other row's and the means differ by more than 0.1% (so "
                "each row needs 2+ seeds); discriminator accuracies have no better direction. images/s is "
                "the last epoch's.")


def variant_tables(runs: list[RunRecord]) -> list[Table]:
    """One variant x dataset table per evaluation (backbone file and sample counts: never mixed)."""
    groups_by_eval = by_evaluation(runs)
    tables = []
    for members in groups_by_eval:
        groups = group_runs(members)
        rows = [_variant_row(label, dataset, grouped) for (dataset, label), grouped in groups.items()]
        rows.sort(key=lambda r: (r["dataset"], r["variant"]))
        suffix = "" if len(groups_by_eval) == 1 else f"_{len(tables) + 1}"
        tables.append(Table(
            name=f"variants{suffix}", title=f"FID/KID/IS: {members[0].eval_label}",
            columns=VARIANT_COLUMNS, rows=rows, group="dataset", note=VARIANT_NOTE,
            warning=warnings_of(members),
        ))
    return tables


def evaluations_table(runs: list[RunRecord]) -> Table:
    """One row per way FID/KID/IS were computed: backbone, its file, settings, accuracy, counts, runs."""
    columns = [Column("backbone", "backbone"), Column("md5", "file md5"), Column("settings", "settings"),
               Column("test_acc", "test acc", "float"), Column("n_real", "real", "int"),
               Column("n_fake", "fake", "int"), Column("n_runs", "runs", "int"), Column("quality", "quality")]
    rows = []
    for members in by_evaluation(runs):
        params = members[0].params
        if members[0].eval_key is None:
            continue
        rows.append({"backbone": params.get("eval_backbone"), "md5": params.get("eval_backbone_md5"),
                     "settings": params.get("eval_backbone_settings"),
                     "test_acc": _float(params.get("eval_backbone_test_acc")),
                     "n_real": _float(params.get("eval_n_real")), "n_fake": _float(params.get("eval_n_fake")),
                     "n_runs": len(members), "quality": _quality(members[0])})
    return Table(name="evaluations", title="How FID/KID/IS were computed", columns=columns, rows=rows,
                 note=("One row per backbone file and sample count; values of different rows are never "
                       "compared or averaged. test acc: the offline classifier's CIFAR-10 test accuracy "
                       "(from the .json beside its file); under 80% its values carry a warning beside "
                       "every table and plot of them."),
                 empty="No aggregated run was evaluated: train with --eval-every K (or score a finished "
                       "run with `python -m harness eval --run-id ID`) to get FID, KID and IS.")


def _quality(run: RunRecord) -> str:
    if run.eval_warning is None:
        return "ok"
    if "eval_backbone_test_acc" in run.params:
        return f"below the {MIN_TEST_ACCURACY:.0%} floor"
    return "file and accuracy not recorded"


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


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


def study_tables(studies: list[StudyRecord]) -> list[Table]:
    """Per study (one class x variant): trial outcomes, best objective and its params.

    Studies scored differently (their ``EVAL_PARAMS`` attributes differ) go
    into separate tables, as runs do.
    """
    groups: dict[tuple, list[StudyRecord]] = defaultdict(list)
    for study in studies:
        groups[tuple(str(study.attrs.get(k, "")) for k in EVAL_PARAMS)].append(study)
    tables = []
    for key in sorted(groups):
        suffix = "" if len(groups) == 1 else f"_{len(tables) + 1}"
        table = _study_table(groups[key])
        table.name += suffix
        if len(groups) > 1:
            table.title = f"Optuna studies scored with {key[0] or 'an unrecorded backbone'}" + (
                f" (file md5 {key[1][:8]})" if key[1] else "")
        tables.append(table)
    return tables


def _study_table(studies: list[StudyRecord]) -> Table:
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
    warning = "\n".join(dict.fromkeys(w for w in (quality_warning(s.attrs) for s in studies) if w))
    return Table(name="studies", title="Optuna studies", columns=columns, rows=rows, warning=warning,
                 note="Best complete trial per study and its params; trials counted by final state.")


# --- runs left out ---------------------------------------------------------------------------
def excluded_table(excluded: list[tuple[RunRecord, str]]) -> Table:
    """The runs not aggregated, with their status and why."""
    columns = [Column("run", "run", "runs"), Column("run_name", "name"), Column("experiment", "experiment"),
               Column("status", "status"), Column("dataset", "dataset"), Column("variant", "variant"),
               Column("seed", "seed", "int"), Column("why", "why")]
    rows = [{"run": [r.run_id], "run_name": r.run_name, "experiment": r.experiment, "status": r.status,
             "dataset": r.dataset, "variant": r.variant, "seed": r.seed, "why": why} for r, why in excluded]
    return Table(name="excluded_runs", title="Runs left out of the aggregates", columns=columns, rows=rows,
                 empty="None: every training run read finished and is aggregated (runs of Optuna studies "
                       "are counted in the study table; backbone trainings are not GAN runs).")


def runs_table(runs: list[RunRecord]) -> Table:
    """Every aggregated run: the ids that the other tables abbreviate, and how each was scored.

    No FID column: FIDs of different backbones would stand side by side; the
    variant tables give them per evaluation.
    """
    columns = [Column("run_id", "run id"), Column("run_name", "name"), Column("experiment", "experiment"),
               Column("dataset", "dataset"), Column("variant", "variant"), Column("seed", "seed", "int"),
               Column("eval", "FID/KID/IS computed with")]
    rows = [{"run_id": r.run_id, "run_name": r.run_name, "experiment": r.experiment, "dataset": r.dataset,
             "variant": r.variant, "seed": r.seed, "eval": r.eval_label}
            for r in sorted(runs, key=lambda r: (r.dataset, r.variant, r.seed is None, r.seed))]
    return Table(name="runs", title="Runs behind the numbers", columns=columns, rows=rows,
                 empty="No finished training run was read, so no table above has numbers.")
