"""Build the report: read runs and studies, make tables and plots, write the formats.

``build_report`` is what ``python -m harness report`` calls. It only reads the
tracking store and the study storage; every number in the output is a
logged value (or a statistic of logged values) of a named run.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import ConfigError, shown
from harness.measure.memorisation import NEAREST_ARTIFACT
from reports import budget, collect, plots, render, runs_csv, study_store, verdicts
from reports.ablation import ablation_table, pooled_table
from reports.campaign import Campaign, read_campaign, scope
from reports.tables import (
    Selection,
    Table,
    by_evaluation,
    evaluations_table,
    excluded_table,
    group_runs,
    runs_table,
    select,
    study_tables,
    variant_tables,
    warnings_of,
)

STRIP_FRAMES = 4  # sample grids per variant in the progression strip
# Metrics drawn per evaluation besides FID, with how to read them.
CURVE_METRICS = {"kid": "Lower is better.", "precision": "Higher: samples look like real ones (fidelity).",
                 "recall": "Higher: samples cover the real images' variety (diversity).",
                 "density": "Higher: fidelity, weighted by how crowded real neighbourhoods are (1: as real).",
                 "coverage": "Higher: diversity, the share of real images with a sample near them."}


@dataclass
class BuildResult:
    """What was written and what it covered."""

    out: Path
    files: list[Path]
    runs: int  # runs read
    included: int  # runs aggregated
    excluded: int
    studies: int
    seconds: float
    tables: list[Table] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.runs == 0 and self.studies == 0


def build_report(tracking_uri: str, out: str | Path = "reports/latest", experiments: list[str] | None = None,
                 formats: tuple[str, ...] = render.FORMATS, storage: str | None = None,
                 campaign: str | None = None) -> BuildResult:
    """Read ``experiments`` (all when None) from ``tracking_uri`` and studies from ``storage``.

    With ``campaign``, only that campaign's runs are read (tag
    ``campaign=<name>``, in those experiments; superseded runs and the parent
    run left out), no studies, and the report opens with the campaign's scope:
    its plan, the cells finished / failed / missing, and what the numbers can
    say. Writes ``report.md``, one CSV per table, ``report.tex``,
    ``report.html`` (as ``formats`` asks) and ``plots/*.png`` into ``out``.
    Raises ``TrackingError`` for an unreadable store and ``ConfigError`` for
    an unknown experiment, campaign, format or an unwritable ``out``.
    """
    start = time.perf_counter()
    unknown = [f for f in formats if f not in render.FORMATS]
    if unknown or not formats:
        raise ConfigError(f"--format {shown(','.join(formats))}: unknown format "
                          f"{shown(', '.join(unknown)) if unknown else '(none)'}; "
                          f"give a comma-separated subset of {','.join(render.FORMATS)}.")

    # --- read ------------------------------------------------------------------------------
    chosen = collect.experiments(tracking_uri, experiments)
    plan: Campaign | None = None
    if campaign is None:
        runs = collect.collect_runs(tracking_uri, chosen)
        studies = study_store.collect_studies(storage)
    else:  # a campaign's report is about its runs alone
        plan = read_campaign(tracking_uri, campaign, chosen)
        runs, studies = plan.runs, []
    sel = select(runs)
    histories = collect.load_histories(tracking_uri, [r.run_id for r in sel.included])
    out = _prepare(Path(out))

    # --- tables ----------------------------------------------------------------------------
    variants = variant_tables(sel.included)
    evaluations = evaluations_table(sel.included)
    ablation = ablation_table(sel.included)
    # KID beside FID: unbiased in N, so it also reads the runs' cheap mid-training points.
    ablation_kid = dataclasses.replace(ablation_table(sel.included, "kid"), name="ablation_kid")
    pooled = pooled_table(sel.included)
    studies_t = study_tables(studies)
    excluded = excluded_table(sel.excluded)
    behind = runs_table(sel.included)

    # --- plots -----------------------------------------------------------------------------
    plots.use_arm_order(plan.variants if plan else sorted({r.variant for r in sel.included if r.variant}))
    figures = _figures(tracking_uri, sel, histories, studies, out / "plots", plan.variants if plan else None)

    # --- write -----------------------------------------------------------------------------
    read = sorted(chosen.values()) if plan is None else sorted({r.experiment for r in runs})
    source = [f"MLflow: {tracking_uri} — experiments: {', '.join(read) or 'none'}",
              f"Optuna: {storage or 'no study storage given or found'}" if plan is None else
              f"Campaign {campaign!r}: only runs tagged campaign={campaign} (its cells), newest first; runs "
              f"replaced by a rerun and the parent run left out"
              + (f" (parent run {plan.parent.run_id})" if plan.parent else ""),
              f"{len(runs)} runs read: {len(sel.included)} aggregated, {len(sel.excluded)} left out"
              + (f", {len(sel.trials)} runs of Optuna studies (counted in the study table)" if sel.trials else "")
              + (f", {len(sel.backbones)} training run(s) of the FID backbone (experiment "
                 f"{collect.BACKBONE_EXPERIMENT!r}; not GAN runs)" if sel.backbones else "")
              + (f", {len(sel.campaigns)} parent run(s) of campaigns (plans and seed groups; not GAN runs)" if sel.campaigns else "")]
    if plan is not None:
        empty = "" if sel.included else (
            f"No finished run of campaign {campaign!r} yet" + (f" in experiments {', '.join(experiments)}"
                                                                  if experiments else "")
            + f". Run `python -m harness campaign PLAN` (its plan's name is {campaign!r}) to train its cells.")
    else:
        empty = "" if sel.included else (
            (f"No finished training runs found in {tracking_uri}" if runs or studies else
             f"No runs and no studies found in {tracking_uri}")
            + (f" (experiments: {', '.join(experiments)})" if experiments else "")
            + ". Train with `python -m harness run` or pass the --tracking-uri your runs were logged to.")
    curves = figures["curves"] + figures["samples"]
    sections = [
        render.Section("Variant x dataset", tables=variants, text=empty, figures=figures["points"]),
        render.Section(evaluations.title, tables=[evaluations]),
        render.Section("Ablation per class", tables=[ablation, ablation_kid]),
        render.Section("Ablation pooled over classes", tables=[pooled]),
        render.Section("Optuna studies", tables=studies_t, figures=figures["studies"],
                       text="" if studies else "No study storage read (pass --storage)."),
        render.Section("Training curves and samples", figures=curves,
                       text="" if curves else "No per-epoch metrics or sample grids were logged by the "
                                              "aggregated runs, so there is nothing to draw."),
        render.Section(excluded.title, tables=[excluded]),
        render.Section(behind.title, tables=[behind]),
    ]
    title = "Which architecture choices matter, for which class"
    tables = [*variants, evaluations, ablation, ablation_kid, pooled, *studies_t, excluded, behind]
    if plan is not None:
        head = scope(plan, sel.included)
        # A campaign's comparisons are its verdicts (reports/verdicts.py), in place of the ablation tables.
        judged = verdicts.for_campaign(plan, sel.included)
        said = verdicts.sections(judged, verdicts.profile_figure(judged, out / "plots"))
        flag = ([render.Section("Warning: the A/A control differs from its base", text=judged.flag)]
                if judged.flag else [])
        sections = flag + [head] + said + [s for s in sections if s.title not in (
            "Optuna studies", "Ablation per class", "Ablation pooled over classes")]
        tables = head.tables + [t for s in said for t in s.tables] + [
            t for t in tables if t not in studies_t and not t.name.startswith("ablation")]
        title = f"Campaign {campaign}: {title[0].lower()}{title[1:]}"
        tuned = budget.tuning_section(tracking_uri, campaign, plan.runs, out / "plots")
        if tuned is not None:  # a [tuning] plan: each arm's search, its winner and budget curve
            sections.insert(sections.index(head) + 1, tuned)
            tables += tuned.tables
            figures["tuning"] = tuned.figures
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = render.Report(title=title, source=source, sections=sections)
    seconds = time.perf_counter() - start
    report.footer = f"Generated {generated} from logged values only, in {seconds:.1f} s."
    files = render.write(report, tables, out, formats)
    if plan is not None:  # every metric and param of every run behind the numbers, to recompute them
        written = runs_csv.write(sel.included, out / "runs.csv")
        files += [] if written in files else [written]
    files += [f.path for group in figures.values() for f in group]
    return BuildResult(out=out, files=files, runs=len(runs), included=len(sel.included),
                       excluded=len(sel.excluded), studies=len(studies),
                       seconds=time.perf_counter() - start, tables=tables)


def _prepare(out: Path) -> Path:
    try:
        (out / "plots").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {str(out)!r} cannot be created ({exc.strerror}); pass a folder you "
                          "can write to.") from None
    for old in (out / "plots").glob("*.png"):  # figures of an earlier build of this folder
        old.unlink()
    return out


def _figures(tracking_uri: str, sel: Selection, histories, studies, folder: Path,
             order: list[str] | None = None) -> dict[str, list[render.Figure]]:
    figures: dict[str, list[render.Figure]] = {"curves": [], "samples": [], "studies": [], "points": []}

    def add(kind: str, path: Path | None, title: str, caption: str = "", warning: str = "") -> None:
        if path is not None:
            figures[kind].append(render.Figure(title, path, caption, warning))

    groups = group_runs(sel.included)
    seeds = "Lines: mean over the row's seeds (n); shaded band: their min-max."
    every = (" n counts every aggregated run of the row, whichever backbone scored it: accuracies and losses "
             "do not depend on it.")
    add("curves", plots.pair_curves(groups, histories, ("real_acc", "fake_acc"), ("real", "fake"), "accuracy",
                                    folder / "accuracy.png", ylim=(-0.03, 1.03)),
        "Discriminator accuracy on real and on fake images, per epoch",
        seeds + " real: fraction of real images D scores > 0.5; fake: of generated images D scores < 0.5."
        + every)
    add("curves", plots.pair_curves(groups, histories, ("d_loss", "g_loss"), ("D", "G"), "loss",
                                    folder / "losses.png"),
        "Discriminator (D) and generator (G) loss, per epoch", seeds + every)
    evaluated = [members for members in by_evaluation(sel.included) if members[0].eval_key is not None]
    for i, members in enumerate(evaluated, start=1):
        label = members[0].eval_label
        suffix = "" if len(evaluated) == 1 else f"_{i}"
        add("points", plots.seed_points(group_runs(members), "fid", "final FID", folder / f"fid_seeds{suffix}.png",
                                        order),
            f"Final FID per variant and class, seeds as points ({label})",
            "One point per seed (labelled s<seed>), its variant's mean as a bar; n: the seeds that finished. "
            "Each class has its own FID scale. Lower is better.", warnings_of(members))
        name = f"fid{suffix}.png"
        add("curves", plots.variant_curves(group_runs(members), histories, "fid", "FID", folder / name),
            f"FID per epoch per variant ({label})", seeds + " Lower is better.", warnings_of(members))
        for key, better in CURVE_METRICS.items():
            add("curves", plots.variant_curves(group_runs(members), histories, key, key, folder / f"{key}{suffix}.png"),
                f"{key} per evaluation per variant ({label})",
                seeds + f" {better} The last point is the run's value; a best point over training would be "
                "optimistic (chosen on the reference).", warnings_of(members))
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in sorted({d for d, _ in groups}):
            rows = []
            for (d, label), members in sorted(groups.items()):
                if d != dataset:
                    continue
                run = min(members, key=lambda r: (r.seed is None, r.seed))
                frames = _spread(collect.sample_epochs(tracking_uri, run), STRIP_FRAMES)
                files = [(epoch, collect.download(tracking_uri, run, path, Path(tmp) / run.run_id))
                         for epoch, path in frames]
                rows.append((f"{label} ({run.short_id})", [(e, f) for e, f in files if f is not None]))
            add("samples", plots.sample_strip(rows, f"{dataset}: samples from early to late epochs",
                                              folder / f"samples_{_slug(dataset)}.png"),
                f"Sample progression: {dataset}",
                "Logged sample grids (fixed noise) of each row's lowest-seed run, named in brackets.")
        for label, run, path in _nearest_grids(tracking_uri, groups, folder, Path(tmp)):
            add("samples", path, f"Memorisation check: {label}",
                f"Run {run.short_id} ({run.dataset}, seed {run.seed}), as its final evaluation logged it: each "
                "row a sample, then its nearest training images in the backbone's features with their "
                "distances. A copy of a training image sits far below the typical distance in the header.")
    add("studies", plots.study_curves(studies, folder / "study_curves.png"),
        "Best objective versus number of trials", "One line per variant; x counts all trials.")
    return figures


def _nearest_grids(tracking_uri: str, groups, folder: Path, tmp: Path) -> list[tuple[str, collect.RunRecord, Path]]:
    """One logged memorisation grid per arm (row label): its lowest-seed run's on the first dataset that has one."""
    found = []
    for label in sorted({label for _, label in groups}):
        runs = sorted((r for (_, l), members in groups.items() if l == label for r in members),
                      key=lambda r: (r.dataset or "", r.seed is None, r.seed))
        for run in runs:
            got = collect.download(tracking_uri, run, NEAREST_ARTIFACT, tmp / run.run_id)
            if got is not None:
                path = folder / f"nearest-{_slug(label).replace('_', '-')}.png"  # no "_" in TeX paths
                path.write_bytes(got.read_bytes())
                found.append((label, run, path))
                break
    return found


def _spread(frames: list, k: int) -> list:
    """Up to ``k`` items spread evenly from first to last."""
    if len(frames) <= k:
        return frames
    picks = sorted({round(i * (len(frames) - 1) / (k - 1)) for i in range(k)})
    return [frames[i] for i in picks]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "dataset"
