"""The ablation: the effect of one architecture axis on FID, paired by seed.

Two variants are compared when they differ in exactly one axis (see
``variants.spec.AXES``) and agree on everything else that changes training
(the ``setting``), on the dataset and on how FID was computed. Their runs
are paired by seed; the table gives the mean paired difference (``to`` minus
``from``), its t confidence interval, a paired t-test and a Wilcoxon
signed-rank test (SciPy), so a reader can tell a real effect from seed noise.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from reports.collect import RunRecord
from reports.tables import Column, Table, warnings_of
from variants.spec import AXES

LEVEL = 0.95


@dataclass
class PairedTest:
    """Statistics of paired differences ``d = b - a``; None where too few pairs."""

    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    t_p: float | None  # two-sided paired t-test
    wilcoxon_p: float | None  # two-sided Wilcoxon signed-rank (exact for small n)


def paired_test(a: list[float], b: list[float], level: float = LEVEL) -> PairedTest:
    """Compare paired samples ``a`` and ``b`` (same length, paired by position)."""
    from scipy import stats

    d = [y - x for x, y in zip(a, b)]
    n = len(d)
    if n == 0:
        return PairedTest(0, None, None, None, None, None)
    mean = statistics.fmean(d)
    if n < 2:
        return PairedTest(n, mean, None, None, None, None)
    sd = statistics.stdev(d)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    t_p = float(stats.ttest_rel(b, a).pvalue) if sd > 0 else None
    wilcoxon_p = None
    if any(x != 0 for x in d):
        wilcoxon_p = float(stats.wilcoxon(d).pvalue)
    return PairedTest(n, mean, mean - half, mean + half, _finite_or_none(t_p), _finite_or_none(wilcoxon_p))


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (same order; None stays None).

    With many rows, about one in twenty plain p-values falls under 0.05 by
    chance; the adjusted ones keep the chance of any false "differs" under 5 %.
    """
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m, out, running = len(present), [None] * len(pvalues), 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


COLUMNS = [
    Column("eval", "FID computed with"),
    Column("dataset", "dataset"),
    Column("axis", "axis"),
    Column("from", "from"),
    Column("to", "to"),
    Column("variant_a", "variant (from)"),
    Column("variant_b", "variant (to)"),
    Column("n", "pairs", "int"),
    # Rounded to the row's confidence interval, as a mean to its std.
    Column("a", "FID from", "float", round_to="ci_half"),
    Column("b", "FID to", "float", round_to="ci_half"),
    Column("diff", "diff (to - from)", "float", round_to="ci_half"),
    Column("ci_low", "95% CI low", "float", round_to="ci_half"),
    Column("ci_high", "95% CI high", "float", round_to="ci_half"),
    Column("t_p", "t-test p", "p"),
    Column("wilcoxon_p", "Wilcoxon p", "p"),
    Column("holm_p", "Holm p", "p"),
    Column("verdict", "verdict"),
    Column("runs", "runs", "runs"),
]


def ablation_table(runs: list[RunRecord], metric: str = "fid", alpha: float = 0.05) -> Table:
    """One row per (evaluation, dataset, axis, pair of variants differing only in that axis).

    A pair needs at least one seed in common; an empty table says why no
    pair qualified, naming the variants that were there.
    """
    cells = _cells(runs, metric)
    rows = []
    for (eval_key, dataset, _), variants in cells.items():
        for i, axis in enumerate(AXES):
            order = [str(v) for v in AXES[axis]]
            for axes_a, seeds_a in variants.items():
                for axes_b, seeds_b in variants.items():
                    differ = [j for j in range(len(AXES)) if axes_a[j] != axes_b[j]]
                    if differ != [i] or _rank(order, axes_a[i]) >= _rank(order, axes_b[i]):
                        continue
                    if set(seeds_a) & set(seeds_b):
                        rows.append(_row(dataset, axis, axes_a[i], axes_b[i], seeds_a, seeds_b, metric))
    for row, adjusted in zip(rows, holm([r["t_p"] for r in rows])):
        row["holm_p"] = adjusted
        if adjusted is not None:
            row["verdict"] = "differs" if adjusted < alpha else "no evidence"
    rows.sort(key=lambda r: (r["eval"], r["dataset"], list(AXES).index(r["axis"]), r["from"], r["to"],
                             r["variant_a"], r["variant_b"]))
    used = [run for variants in cells.values() for seeds in variants.values() for run in seeds.values()]
    return Table(
        name="ablation", title=f"Ablation: effect of one axis on final {metric.upper()}", columns=COLUMNS,
        rows=rows, warning=warnings_of(used), empty=_why_empty(runs, cells, metric),
        note=(f"Pairs of variants that differ in exactly this axis, on the same dataset, setting and "
              f"evaluation (backbone file and sample counts), paired by seed. diff = mean over seeds of "
              f"({metric.upper()} to - {metric.upper()} from); negative means 'to' is better. CI: t "
              f"interval at {LEVEL:.0%}; the FIDs, diff and CI of a row are rounded to its CI's half-width. "
              f"Holm p: the t-test p adjusted (Holm-Bonferroni) over all rows of "
              f"this table; verdict 'differs' when it is < {alpha}. With few seeds the Wilcoxon test "
              "cannot reach significance (its smallest p is 2/2^n)."),
    )


def _cells(runs: list[RunRecord], metric: str) -> dict[tuple, dict[tuple, dict[int, RunRecord]]]:
    """{(evaluation, dataset, setting): {axis values: {seed: run}}} of the runs that can be paired."""
    cells: dict[tuple, dict[tuple, dict[int, RunRecord]]] = defaultdict(lambda: defaultdict(dict))
    for run in runs:
        if run.seed is None or len(run.axes) != len(AXES) or metric not in run.metrics:
            continue
        axes = tuple(run.axes[a] for a in AXES)
        # Runs arrive newest first: the first run seen for a seed is kept.
        cells[(run.eval_key, run.dataset, run.setting)][axes].setdefault(run.seed, run)
    return cells


def _why_empty(runs: list[RunRecord], cells, metric: str) -> str:
    """Why no pair qualified, in terms of the variants that were there."""
    rule = ("Rows come from pairs of variants that differ in exactly one axis (e.g. animals_baseline and bn: "
            "batchnorm) on the same dataset, settings and FID backbone, with at least one seed in common "
            "(two or more for a test). ")
    if not cells:
        if not runs:
            return rule + "No finished training run was read."
        return rule + (f"No aggregated run has a final {metric.upper()} with a seed and all axes logged; "
                       "train with --eval-every K.")
    found = []
    for (_, dataset, _), variants in sorted(cells.items(), key=lambda kv: str(kv[0][1:])):
        names = {axes: _name(seeds) for axes, seeds in variants.items()}
        if len(variants) == 1:
            found.append(f"{dataset}: only {next(iter(names.values()))}")
            continue
        for (axes_a, seeds_a), (axes_b, seeds_b) in _pairs(list(variants.items())):
            differ = [axis for j, axis in enumerate(AXES) if axes_a[j] != axes_b[j]]
            if len(differ) > 1:
                found.append(f"{dataset}: {names[axes_a]} and {names[axes_b]} differ in {len(differ)} axes "
                             f"({', '.join(differ)})")
            else:
                found.append(f"{dataset}: {names[axes_a]} (seeds {_seeds(seeds_a)}) and {names[axes_b]} "
                             f"(seeds {_seeds(seeds_b)}) have no seed in common")
    separated = len({key[1:] for key in cells}) < len(cells)
    return (rule + "Here: " + "; ".join(found) + "."
            + (" Some variants ran with other settings or another FID backbone, so they are not paired."
               if separated else ""))


def _pairs(items: list) -> list[tuple]:
    return [(a, b) for i, a in enumerate(items) for b in items[i + 1:]]


def _seeds(seeds: dict[int, RunRecord]) -> str:
    return ", ".join(str(s) for s in sorted(seeds))


def _rank(order: list[str], value: str) -> int:
    return order.index(value) if value in order else len(order)


def _row(dataset, axis, value_a, value_b, seeds_a, seeds_b, metric) -> dict[str, Any]:
    seeds = sorted(set(seeds_a) & set(seeds_b))
    a = [seeds_a[s].metrics[metric] for s in seeds]
    b = [seeds_b[s].metrics[metric] for s in seeds]
    test = paired_test(a, b)
    # Decided on the Holm-adjusted p once every row is known (ablation_table).
    verdict = "too few seeds" if test.n < 2 else "no evidence"
    runs = [seeds_a[s].run_id for s in seeds] + [seeds_b[s].run_id for s in seeds]
    return {
        "eval": seeds_a[seeds[0]].eval_label, "dataset": dataset, "axis": axis, "from": value_a, "to": value_b,
        "variant_a": _name(seeds_a), "variant_b": _name(seeds_b), "n": test.n,
        "a": statistics.fmean(a), "b": statistics.fmean(b),
        "diff": test.mean, "ci_low": test.ci_low, "ci_high": test.ci_high, "t_p": test.t_p,
        "ci_half": None if test.ci_low is None else (test.ci_high - test.ci_low) / 2,
        "wilcoxon_p": test.wilcoxon_p, "verdict": verdict, "runs": runs,
    }


def _name(seeds: dict[int, RunRecord]) -> str:
    return "/".join(sorted({r.variant for r in seeds.values() if r.variant}))
