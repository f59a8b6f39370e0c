"""A tuned campaign's search in the report: which settings each arm won with, and what a budget buys.

The trials are the runs tagged ``campaign=<name>:search`` (``harness.store.schema.SEARCH_SUFFIX``); the campaign's other tables hold the
confirmation cells only. For each arm (dataset, variant):

- its winner: the best finished trial by the plan's metric, its settings,
  and the confirmation cells that trained them again on fresh seeds;
- its budget curve (Lucic et al. 2018): the expected best metric after k
  trials, k = 1 .. the trials it had, bootstrapped over its finished trials
  with the band where 95% of k-trial searches land (``harness.stats.expected_best``);
- how forgiving it is: the share of its trials within 10% of its best
  (``harness.stats.share_within``).

Failed trials (diverged, no score) are left out of the curves and counted
beside them. Only reads.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from harness.errors import ConfigError
from harness.stats import expected_best, share_within
from harness.stats.design import lower_is_better
from harness.store.schema import (
    CAMPAIGN_TAG,
    CELL_TAG,
    SEARCH_SUFFIX,
    SUPERSEDED_TAG,
    TRIAL_TAG,
    TUNING_METRIC_TAG,
    WINNER_TAG,
)
from reports import collect, plots
from reports.collect import RunRecord
from reports.render import Figure, Section
from reports.tables import Column, Table

SHARE_FRACTION = 0.10
REPS = 1000  # bootstrap draws per curve
PARAMS = ("g_lr", "d_lr", "g_beta_1", "d_beta_1", "label_smoothing")


def tuning_section(uri: str, name: str, cells: list[RunRecord], folder: Path) -> Section | None:
    """The section on campaign ``name``'s search, or None when the campaign was not tuned.

    ``cells`` are the campaign's confirmation runs; the plot is written into ``folder``.
    """
    trials = [r for r in collect.collect_runs(uri, collect.experiments(uri), tags={CAMPAIGN_TAG: name + SEARCH_SUFFIX})
              if SUPERSEDED_TAG not in r.tags and not r.campaign_parent]
    if not trials:
        return None
    newest: dict[str, RunRecord] = {}
    for run in trials:  # newest first: a trial's newest run decides it
        newest.setdefault(run.tags.get(CELL_TAG, ""), run)
    metric = next(iter(newest.values())).tags.get(TUNING_METRIC_TAG, "kid")
    lower = lower_is_better(metric) is not False
    by_arm: dict[str, list[RunRecord]] = defaultdict(list)
    for key, run in sorted(newest.items(), key=lambda kv: (kv[0].rsplit("/", 1)[0], int(kv[1].tags.get(TRIAL_TAG, 0)))):
        by_arm[key.rsplit("/", 1)[0]].append(run)
    confirmed = defaultdict(list)
    for run in cells:
        confirmed[run.tags.get(WINNER_TAG)].append(run)

    winners = Table("tuning_winners", f"Each arm's search: its best trial by {metric} (confirmed on fresh seeds)",
                    [Column("arm", "arm"), Column("trials", "trials", "int"), Column("finished", "finished", "int"),
                     Column("failed", "failed or unfinished", "int"), Column("winner", "best trial"),
                     Column("value", f"{metric} of the best trial", "float"),
                     *[Column(p, p, "float") for p in _searched(newest.values())],
                     Column("share", f"share within {100 * SHARE_FRACTION:g}% of its best", "float"),
                     Column("confirmed", "confirmation cells", "int")],
                    note="The best trial of many on one seed is optimistic for that seed, so the comparisons of "
                         "this report use the confirmation cells only: each arm's winning settings trained "
                         "again on seeds no trial used.")
    curve_rows, curves = [], {}
    for arm, runs in by_arm.items():
        scored = [r for r in runs if r.status == "FINISHED" and math.isfinite(r.metrics.get(metric, math.nan))]
        values = [r.metrics[metric] for r in scored]
        row = {"arm": arm, "trials": len(runs), "finished": len(values), "failed": len(runs) - len(values)}
        if values:
            best = (min if lower else max)(scored, key=lambda r: r.metrics[metric])  # ties: the lower trial
            key = best.tags.get(CELL_TAG, "")
            row.update(winner=key.rsplit("/", 1)[1], value=best.metrics[metric],
                       confirmed=len(confirmed.get(key, [])),
                       **{p: float(best.params[p]) for p in PARAMS if p in best.params and best.params[p] != "None"})
            try:
                row["share"] = share_within(values, SHARE_FRACTION, lower_is_better=lower)
            except ConfigError:  # the best is too near zero for 10% of it to mean anything
                row["share"] = None
            points = expected_best(values, k_max=len(runs), lower_is_better=lower, reps=REPS, seed=0)
            curves[arm] = points
            curve_rows += [{"arm": arm, "k": p.k, "mean": p.mean, "low": p.low, "high": p.high, "exact": p.exact}
                           for p in points]
        winners.rows.append(row)
    table = Table("tuning_budget", f"Expected best {metric} after k trials (bootstrap over each arm's finished trials)",
                  [Column("arm", "arm"), Column("k", "k trials", "int"), Column("mean", "expected best", "float"),
                   Column("low", "2.5%", "float"), Column("high", "97.5%", "float"),
                   Column("exact", "exact (order statistics)", "float")],
                  rows=curve_rows, group="k",
                  note=f"{REPS} bootstrap draws per arm; the band is where 95% of k-trial searches land, not an "
                       "interval for the mean. Failed trials are left out of the draws.",
                  empty="No trial has finished yet: run the campaign to draw the budget curves.")
    figures = []
    path = budget_plot(curves, metric, lower, folder / "tuning_budget.png")
    if path is not None:
        figures.append(Figure(f"Expected best {metric} after k trials", path,
                              caption="Line: the expected best of k trials drawn from the arm's trials; band: "
                                      "2.5-97.5% of the bootstrap draws. An arm whose line drops fast is "
                                      "forgiving to its hyperparameters; one still falling at the right needed "
                                      "more trials."))
    counts = sorted({row["trials"] for row in winners.rows})
    text = (f"Every arm was searched alike: {', '.join(map(str, counts))} trials each, drawn at random from the "
            f"same space at the same points, on tuning seeds disjoint from the confirmation seeds; each arm's "
            f"best trial by {metric} was trained again on the confirmation seeds."
            + ("" if len(counts) == 1 else " WARNING: the arms had unequal numbers of trials; the comparison is "
                                           "not at an equal budget."))
    return Section("Tuning: equal-budget search per arm", tables=[winners, table], figures=figures, text=text)


def _searched(trials) -> list[str]:
    """The settings of ``PARAMS`` the trials drew: those whose logged values differ between trials."""
    trials = list(trials)
    return [p for p in PARAMS if len({r.params.get(p) for r in trials}) > 1 or len(trials) == 1 and p in trials[0].params]


def budget_plot(curves: dict[str, list], metric: str, lower: bool, path: Path) -> Path | None:
    """One line per arm: expected best ``metric`` against trials k, with its 95% band."""
    if not curves:
        return None
    plt = plots._pyplot()
    fig, (panel,) = plots._panels(plt, 1, cols=1, height=3.8)
    ends = []
    for arm, points in curves.items():
        colour, marker = plots.arm_style(arm.rsplit("/", 1)[-1])
        ks = [p.k for p in points]
        plots._draw(panel, ks, [p.mean for p in points], [p.low for p in points], [p.high for p in points],
                    colour, marker)
        ends.append((ks[-1], points[-1].mean, arm, colour))
    plots._room_for_labels(panel, [p.k for points in curves.values() for p in points], [e[2] for e in ends])
    plots._label_ends(panel, ends)
    panel.set_xlabel("trials k")
    panel.set_ylabel(f"expected best {metric} ({'lower' if lower else 'higher'} is better)")
    panel.grid(alpha=0.3)
    plots._save(fig, path)
    plt.close(fig)
    return path
