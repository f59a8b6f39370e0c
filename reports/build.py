"""Build the report: read runs and studies, make tables and plots, write the formats.

``build_report`` is what ``python -m harness report`` calls. It only reads the
tracking store and the study storage; every number in the output is a
logged value (or a statistic of logged values) of a named run.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import ConfigError
from reports import collect, plots, render, study_store
from reports.ablation import ablation_table
from reports.tables import (Selection, Table, eval_label, excluded_table, group_runs, runs_table, select,
                            study_table, variant_tables)

STRIP_FRAMES = 4  # sample grids per variant in the progression strip


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
                 formats: tuple[str, ...] = render.FORMATS, storage: str | None = None) -> BuildResult:
    """Read ``experiments`` (all when None) from ``tracking_uri`` and studies from ``storage``.

    Writes ``report.md``, one CSV per table, ``report.tex``, ``report.html``
    (as ``formats`` asks) and ``plots/*.png`` into ``out``. Raises
    ``TrackingError`` for an unreadable store and ``ConfigError`` for an
    unknown experiment, format or an unwritable ``out``.
    """
    start = time.perf_counter()
    unknown = [f for f in formats if f not in render.FORMATS]
    if unknown or not formats:
        raise ConfigError(f"--format {','.join(formats)!r}: unknown format {', '.join(unknown) or '(none)'}; "
                          f"give a comma-separated subset of {','.join(render.FORMATS)}.")

    # --- read ------------------------------------------------------------------------------
    client = collect.open_store(tracking_uri)
    chosen = collect.experiments(client, experiments)
    runs = collect.collect_runs(client, chosen)
    studies = study_store.collect_studies(storage)
    sel = select(runs)
    histories = collect.load_histories(client, [r.run_id for r in sel.included])
    out = _prepare(Path(out))

    # --- tables ----------------------------------------------------------------------------
    variants = variant_tables(sel.included)
    ablation = ablation_table(sel.included)
    studies_t = study_table(studies)
    excluded = excluded_table(sel.excluded)
    behind = runs_table(sel.included)

    # --- plots -----------------------------------------------------------------------------
    figures = _figures(tracking_uri, sel, histories, studies, out / "plots")

    # --- write -----------------------------------------------------------------------------
    source = [f"MLflow: {tracking_uri} — experiments: {', '.join(sorted(chosen.values())) or 'none'}",
              f"Optuna: {storage or 'no study storage given or found'}",
              f"{len(runs)} runs read: {len(sel.included)} aggregated, {len(sel.excluded)} left out"
              + (f", {len(sel.trials)} runs of Optuna studies (counted in the study table)"
                 if sel.trials else "")]
    empty = "" if runs or studies else (
        f"No runs and no studies found in {tracking_uri}"
        + (f" (experiments: {', '.join(experiments)})" if experiments else "")
        + ". Train with `python -m harness run` or pass the --tracking-uri your runs were logged to.")
    sections = [
        render.Section("Variant x dataset", tables=variants, text=empty),
        render.Section("Ablation", tables=[ablation]),
        render.Section("Optuna studies", tables=[studies_t] if studies else [],
                       figures=figures["studies"],
                       text="" if studies else "No study storage read (pass --storage)."),
        render.Section("Training curves and samples", figures=figures["curves"] + figures["samples"]),
        render.Section("Runs left out", tables=[excluded]),
        render.Section("Runs behind the numbers", tables=[behind]),
    ]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = render.Report(title="Which architecture choices matter, for which class", source=source,
                           sections=sections)
    tables = [*variants, ablation, *([studies_t] if studies else []), excluded, behind]
    seconds = time.perf_counter() - start
    report.footer = f"Generated {generated} from logged values only, in {seconds:.1f} s."
    files = render.write(report, tables, out, formats)
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


def _figures(tracking_uri: str, sel: Selection, histories, studies, folder: Path) -> dict[str, list[render.Figure]]:
    figures: dict[str, list[render.Figure]] = {"curves": [], "samples": [], "studies": []}

    def add(kind: str, path: Path | None, title: str, caption: str = "") -> None:
        if path is not None:
            figures[kind].append(render.Figure(title, path, caption))

    groups = group_runs(sel.included)
    seeds = "Lines are means over each row's seeds (n in the variant table)."
    add("curves", plots.curves(groups, histories, ("real_acc", "fake_acc"), ("real", "fake"), "accuracy",
                               "Discriminator accuracy on real (solid) and fake (dashed) images",
                               folder / "accuracy.png"),
        "Real vs fake accuracy per epoch", seeds)
    add("curves", plots.curves(groups, histories, ("d_loss", "g_loss"), ("D", "G"), "loss",
                               "Discriminator (solid) and generator (dashed) loss", folder / "losses.png"),
        "Losses per epoch", seeds)
    eval_keys = sorted({r.eval_key for r in sel.included if r.eval_key is not None})
    for i, key in enumerate(eval_keys, start=1):
        runs = [r for r in sel.included if r.eval_key == key]
        name = "fid.png" if len(eval_keys) == 1 else f"fid_{i}.png"
        add("curves", plots.curves(group_runs(runs), histories, ("fid",), ("FID",), "FID",
                                   f"FID per epoch ({eval_label(key)})", folder / name),
            f"FID per epoch per variant ({eval_label(key)})", seeds)
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in sorted({d for d, _ in groups}):
            rows = []
            for (d, label), members in sorted(groups.items()):
                if d != dataset:
                    continue
                run = min(members, key=lambda r: (r.seed is None, r.seed))
                repo = collect.artifacts(run, tracking_uri)
                frames = _spread(collect.sample_epochs(repo), STRIP_FRAMES)
                files = [(epoch, collect.download(repo, path, Path(tmp) / run.run_id)) for epoch, path in frames]
                rows.append((f"{label} ({run.short_id})", [(e, f) for e, f in files if f is not None]))
            add("samples", plots.sample_strip(rows, f"{dataset}: samples from early to late epochs",
                                              folder / f"samples_{_slug(dataset)}.png"),
                f"Sample progression: {dataset}",
                "Logged sample grids (fixed noise) of each row's lowest-seed run, named in brackets.")
    add("studies", plots.study_curves(studies, folder / "study_curves.png"),
        "Best objective versus number of trials", "One line per variant; x counts all trials.")
    return figures


def _spread(frames: list, k: int) -> list:
    """Up to ``k`` items spread evenly from first to last."""
    if len(frames) <= k:
        return frames
    picks = sorted({round(i * (len(frames) - 1) / (k - 1)) for i in range(k)})
    return [frames[i] for i in picks]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "dataset"
