"""The ablation: the effect of one architecture axis on FID, paired by seed.

Two variants are compared when they differ in exactly one axis (see
``variants.spec.AXES``) and agree on everything else that changes training
(the ``setting``), on the dataset and on how FID was computed. Their runs
are paired by seed; the table gives the mean paired difference (``to`` minus
``from``), its t confidence interval, a paired t-test and a Wilcoxon
signed-rank test (SciPy), so a reader can tell a real effect from seed noise.

The pooled table asks the same question across classes ("does BatchNorm
help, across classes?"): the same one-axis change, its runs paired by
(class, seed). FID's scale differs by class (a class at FID 300 moves by tens
where one at 80 moves by a few), so raw differences would let the noisiest
class decide. Each pair is put on one scale by itself: its log FID ratio
ln(FID to / FID from), a relative change that needs no estimated class mean
(a ratio to the class's mean FID would share one noisy denominator among a
class's pairs). The mean log ratio, its t interval and both tests are shown
as a percent change in FID, 100 (exp(x) - 1).

A row with fewer than ``MIN_PAIRS`` pairs gets no verdict: with two pairs the
t-test has one degree of freedom and the smallest Wilcoxon p is 0.5. Such
rows are left out of the Holm family, so they cost the others no power.
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
MIN_PAIRS = 3  # fewer pairs: "too few seeds to tell" instead of a verdict
TOO_FEW = "too few seeds to tell"


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
    """Compare paired samples ``a`` and ``b`` (same length, paired by position): tests of ``b - a``."""
    return difference_test([y - x for x, y in zip(a, b)], level)


def difference_test(d: list[float], level: float = LEVEL) -> PairedTest:
    """Is the mean of the paired differences ``d`` zero? t interval, one-sample t-test, Wilcoxon."""
    from scipy import stats

    n = len(d)
    if n == 0:
        return PairedTest(0, None, None, None, None, None)
    mean = statistics.fmean(d)
    if n < 2:
        return PairedTest(n, mean, None, None, None, None)
    sd = statistics.stdev(d)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    t_p = float(stats.ttest_1samp(d, 0.0).pvalue) if sd > 0 else None
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
        for axis, axes_a, axes_b in _one_axis_pairs(variants):
            seeds_a, seeds_b = variants[axes_a], variants[axes_b]
            if set(seeds_a) & set(seeds_b):
                i = list(AXES).index(axis)
                rows.append(_row(dataset, axis, axes_a[i], axes_b[i], seeds_a, seeds_b, metric))
    _decide(rows, alpha)
    rows.sort(key=lambda r: (r["eval"], r["dataset"], list(AXES).index(r["axis"]), r["from"], r["to"],
                             r["variant_a"], r["variant_b"]))
    used = [run for variants in cells.values() for seeds in variants.values() for run in seeds.values()]
    return _one_evaluation(Table(
        name="ablation", title=f"Per class: effect of one axis on final {metric.upper()}",
        columns=COLUMNS, rows=rows, warning=warnings_of(used), empty=_why_empty(runs, cells, metric),
        note=(f"Pairs of variants that differ in exactly this axis, on the same dataset, setting and "
              f"evaluation (backbone file and sample counts), paired by seed; pairs: the seeds both variants "
              f"finished. diff = mean over seeds of ({metric.upper()} to - {metric.upper()} from); negative "
              f"means 'to' is better. CI: t interval at {LEVEL:.0%}; the FIDs, diff and CI of a row are "
              f"rounded to its CI's half-width. Holm p: the t-test p adjusted (Holm-Bonferroni) over the rows "
              f"of this table with {MIN_PAIRS}+ pairs; verdict 'differs' when it is < {alpha}. Rows with fewer "
              f"pairs say '{TOO_FEW}' and show their p-values only for completeness. With few seeds the "
              f"Wilcoxon test cannot reach significance (its smallest p is 2/2^n: 0.25 for 3 pairs)."),
    ))


POOLED_COLUMNS = [
    Column("eval", "FID computed with"),
    Column("axis", "axis"),
    Column("from", "from"),
    Column("to", "to"),
    Column("variant_a", "variant (from)"),
    Column("variant_b", "variant (to)"),
    Column("classes", "classes", "int"),
    Column("n", "pairs", "int"),
    Column("change", "FID change %", "float", round_to="ci_half"),
    Column("ci_low", "95% CI low %", "float", round_to="ci_half"),
    Column("ci_high", "95% CI high %", "float", round_to="ci_half"),
    Column("t_p", "t-test p", "p"),
    Column("wilcoxon_p", "Wilcoxon p", "p"),
    Column("holm_p", "Holm p", "p"),
    Column("verdict", "verdict"),
    Column("by_class", "per class: change % (pairs)"),
    Column("runs", "runs", "runs"),
]


def pooled_table(runs: list[RunRecord], metric: str = "fid", alpha: float = 0.05) -> Table:
    """One row per (evaluation, setting, one-axis change) measured on two or more classes.

    The runs of each class are paired by seed as in ``ablation_table``; the
    pairs of all classes are pooled, each as its log ratio ln(to / from)
    (see the module docstring). ``change`` and its CI are percent changes in
    FID; the tests are of the mean log ratio; ``n`` counts (class, seed) pairs.
    """
    cells = _cells(runs, metric)
    by_setting: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for (eval_key, dataset, setting), variants in cells.items():
        by_setting[(eval_key, setting)][dataset] = variants
    rows, single = [], []
    for classes in by_setting.values():
        changes: dict[tuple, dict[str, tuple]] = defaultdict(dict)  # (axis, from, to) -> class -> seeds
        for dataset, variants in classes.items():
            for axis, axes_a, axes_b in _one_axis_pairs(variants):
                if set(variants[axes_a]) & set(variants[axes_b]):
                    changes[(axis, axes_a, axes_b)][dataset] = (variants[axes_a], variants[axes_b])
        for (axis, axes_a, axes_b), per_class in changes.items():
            if len(per_class) < 2:
                ((dataset, (seeds_a, seeds_b)),) = per_class.items()
                single.append(f"{_name(seeds_a)} to {_name(seeds_b)} only on {dataset}")
                continue
            i = list(AXES).index(axis)
            row = _pooled_row(axis, axes_a[i], axes_b[i], per_class, metric)
            if row is not None:
                rows.append(row)
    _decide(rows, alpha)
    rows.sort(key=lambda r: (r["eval"], list(AXES).index(r["axis"]), r["from"], r["to"], r["variant_a"],
                             r["variant_b"]))
    used = [run for variants in cells.values() for seeds in variants.values() for run in seeds.values()]
    return _one_evaluation(Table(
        name="ablation_pooled", title=f"Pooled over classes: effect of one axis on final {metric.upper()}",
        columns=POOLED_COLUMNS, rows=rows, warning=warnings_of(used),
        empty=_why_not_pooled(cells, single, metric),
        note=(f"The same one-axis change on every class that ran it with the same setting and evaluation, "
              f"its runs paired by (class, seed); pairs: all such pairs, classes: how many classes gave them. "
              f"FID scales differ by class, so each pair counts as its log ratio ln({metric.upper()} to / "
              f"{metric.upper()} from), a relative change; FID change % = 100 (exp(mean log ratio) - 1), the "
              f"change of a typical pair, negative when 'to' is better; its CI is the t interval of the mean "
              f"log ratio at {LEVEL:.0%}, mapped the same way. The t-test and Wilcoxon test are of the log "
              f"ratios; Holm p adjusts the t-test p over the rows of this table with {MIN_PAIRS}+ pairs (a "
              f"family apart from the per-class table). Pairs are treated as independent: the result holds "
              f"for these classes on average, not for other classes, and a change that helps one class and "
              f"hurts another can pool to no effect (the per-class column and table show it)."),
    ))


def _one_evaluation(table: Table) -> Table:
    """Name the evaluation in the title, not in every row, when all rows share one."""
    labels = {row["eval"] for row in table.rows}
    if len(labels) == 1:
        table.title += f", computed with {labels.pop()}"
        table.columns = [c for c in table.columns if c.key != "eval"]
    return table


def _one_axis_pairs(variants: dict[tuple, Any]) -> list[tuple[str, tuple, tuple]]:
    """(axis, from axes, to axes) for every two variants differing in exactly that axis,
    'from' being the value listed first in ``AXES`` (e.g. no BatchNorm before BatchNorm)."""
    found = []
    for i, axis in enumerate(AXES):
        order = [str(v) for v in AXES[axis]]
        for axes_a in variants:
            for axes_b in variants:
                differ = [j for j in range(len(AXES)) if axes_a[j] != axes_b[j]]
                if differ == [i] and _rank(order, axes_a[i]) < _rank(order, axes_b[i]):
                    found.append((axis, axes_a, axes_b))
    return found


def _decide(rows: list[dict[str, Any]], alpha: float) -> None:
    """Holm-adjust the t-test p over the rows with enough pairs; set every row's verdict."""
    family = [row for row in rows if row["n"] >= MIN_PAIRS]
    for row, adjusted in zip(family, holm([r["t_p"] for r in family])):
        row["holm_p"] = adjusted
    for row in rows:
        adjusted = row.get("holm_p")
        if row["n"] < MIN_PAIRS:
            row["holm_p"], row["verdict"] = None, TOO_FEW
        elif adjusted is None:  # every difference equal: no spread to test against
            row["verdict"] = "no test (no spread)"
        else:
            row["verdict"] = "differs" if adjusted < alpha else "no evidence"


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
            f"({MIN_PAIRS} or more for a verdict). ")
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


def _why_not_pooled(cells, single: list[str], metric: str) -> str:
    rule = ("A pooled row needs the same one-axis change run on two or more classes, with the same settings "
            "and FID backbone, each class with a seed in common between its two variants. ")
    if not cells:
        return rule + f"No aggregated run has a final {metric.upper()} with a seed and all axes logged."
    classes = sorted({key[1] for key in cells})
    if len(classes) < 2:
        return rule + f"Only one class was read ({', '.join(map(str, classes))}); the per-class table has its rows."
    settings = len({key[::2] for key in cells})
    return (rule + (f"Here: {'; '.join(sorted(set(single)))}." if single else "Here no change qualified.")
            + (" The classes ran with different settings or FID backbones, so they are not pooled."
               if settings > 1 else ""))


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
    runs = [seeds_a[s].run_id for s in seeds] + [seeds_b[s].run_id for s in seeds]
    return {
        "eval": seeds_a[seeds[0]].eval_label, "dataset": dataset, "axis": axis, "from": value_a, "to": value_b,
        "variant_a": _name(seeds_a), "variant_b": _name(seeds_b), "n": test.n,
        "a": statistics.fmean(a), "b": statistics.fmean(b),
        "diff": test.mean, "ci_low": test.ci_low, "ci_high": test.ci_high, "t_p": test.t_p,
        "ci_half": None if test.ci_low is None else (test.ci_high - test.ci_low) / 2,
        "wilcoxon_p": test.wilcoxon_p, "runs": runs,
    }


def _pooled_row(axis, value_a, value_b, per_class: dict[str, tuple], metric) -> dict[str, Any] | None:
    ratios, by_class, runs_a, runs_b = [], [], [], []
    for dataset in sorted(per_class):
        seeds_a, seeds_b = per_class[dataset]
        seeds = [s for s in sorted(set(seeds_a) & set(seeds_b))
                 if seeds_a[s].metrics[metric] > 0 and seeds_b[s].metrics[metric] > 0]  # a log needs both > 0
        logs = [math.log(seeds_b[s].metrics[metric] / seeds_a[s].metrics[metric]) for s in seeds]
        if not logs:
            continue
        ratios += logs
        by_class.append(f"{dataset} {_percent_text(_percent(statistics.fmean(logs)))} ({len(logs)})")
        runs_a += [seeds_a[s] for s in seeds]
        runs_b += [seeds_b[s] for s in seeds]
    if not ratios:
        return None
    test = difference_test(ratios)
    low, high = _percent(test.ci_low), _percent(test.ci_high)
    return {
        "eval": runs_a[0].eval_label, "axis": axis, "from": value_a, "to": value_b,
        "variant_a": _names(runs_a), "variant_b": _names(runs_b), "classes": len(by_class), "n": test.n,
        "change": _percent(test.mean), "ci_low": low, "ci_high": high,
        "ci_half": None if low is None else (high - low) / 2, "mean_log_ratio": test.mean,
        "t_p": test.t_p, "wilcoxon_p": test.wilcoxon_p, "by_class": ", ".join(by_class),
        "runs": [r.run_id for r in runs_a] + [r.run_id for r in runs_b],
    }


def _percent(log_ratio: float | None) -> float | None:
    return None if log_ratio is None else 100.0 * math.expm1(log_ratio)


def _percent_text(value: float) -> str:
    """A per-class change in the 'by class' text: two significant digits, signed (``-8.1%``, ``+12%``)."""
    if value == 0:
        return "0%"
    decimals = min(3, max(0, 1 - math.floor(math.log10(abs(value)))))
    return f"{value:+.{decimals}f}%"


def _name(seeds: dict[int, RunRecord]) -> str:
    return _names(seeds.values())


def _names(runs) -> str:
    return "/".join(sorted({r.variant for r in runs if r.variant}))
