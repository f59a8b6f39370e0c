"""The ablation: the effect of one architecture axis on FID (or KID), paired by seed.

Two variants are compared when they differ in exactly one axis (see
``variants.spec.AXES``) and agree on everything else that changes training
(the ``setting``), on the dataset and on how the metric was computed. Their
runs are paired by seed and compared with ``harness.stats``: the change
(``to`` minus ``from``, as a fraction of ``from``'s mean on the class), its
interval, a paired t-test and an equivalence test (TOST within ±``MARGIN``),
and one of four verdicts: better, worse, equivalent or inconclusive.

The pooled table asks the same question across classes ("does BatchNorm
help, across classes?"): the same one-axis change, its runs paired by
(class, seed), each class on the scale of its own ``from`` mean, so the
noisiest class does not decide (``harness.stats.compare_pooled``).

A seed only one variant finished, or fewer than 2 pairs, make a row
inconclusive with the reason, never a number from fewer runs. The rows of a
table with a test form one Holm family. A metric without a direction (IS for
one class) gets no verdict.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import defaultdict
from typing import Any

from harness.stats import holm
from harness.stats.paired import decide
from reports.collect import RunRecord
from reports.tables import Column, Table, warnings_of
from variants.spec import AXES

LEVEL = 0.95
MARGIN = 0.10  # equivalence: within ±10% of the 'from' variant's value


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
    Column("a", "from (mean)", "float", round_to="raw_half"),
    Column("b", "to (mean)", "float", round_to="raw_half"),
    Column("change", "change %", "float", round_to="ci_half"),
    Column("ci_low", "95% CI low %", "float", round_to="ci_half"),
    Column("ci_high", "95% CI high %", "float", round_to="ci_half"),
    Column("p", "t-test p", "p"),
    Column("holm_p", "Holm p", "p"),
    Column("tost_p", "TOST p", "p"),
    Column("verdict", "verdict"),
    Column("reason", "why inconclusive"),
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
              f"finished. change = mean over seeds of ({metric.upper()} to - {metric.upper()} from), as a % of "
              f"the 'from' mean; negative means 'to' is lower. CI: t interval at {LEVEL:.0%}. Holm p: the "
              f"t-test p adjusted (Holm) over the rows of this table with a test; TOST p: equivalence within "
              f"±{100 * MARGIN:g}%. {_RULE.format(alpha=alpha)}"),
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
    Column("change", "change %", "float", round_to="ci_half"),
    Column("ci_low", "95% CI low %", "float", round_to="ci_half"),
    Column("ci_high", "95% CI high %", "float", round_to="ci_half"),
    Column("p", "t-test p", "p"),
    Column("holm_p", "Holm p", "p"),
    Column("tost_p", "TOST p", "p"),
    Column("verdict", "verdict"),
    Column("reason", "why inconclusive"),
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
              f"Each pair counts as its difference over the 'from' mean of its class, so no class's scale "
              f"decides; change % = the mean over classes of each class's mean change; the t-test, its "
              f"{LEVEL:.0%} CI and TOST (±{100 * MARGIN:g}%) are one stratified t, classes as blocks "
              f"(variance from the spread within each class). Holm p adjusts the t-test p over the rows of this table (a family apart from the "
              f"per-class table). {_RULE.format(alpha=alpha)} The result holds for these classes on average, "
              f"not for other classes; a change that helps one class and hurts another can pool to no effect "
              f"(the per-class column and table show it)."),
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


_RULE = ("Verdict from the tests alone at alpha {alpha:g}: better or worse when the Holm p < alpha (lower is "
         "better for FID and KID), else equivalent when the TOST p < alpha, else inconclusive; a seed only one "
         "variant finished, or fewer than 2 pairs, make a row inconclusive without numbers.")


def _decide(rows: list[dict[str, Any]], alpha: float) -> None:
    """Holm-adjust the t-test p over the rows with a test, and set each row's verdict from the tests alone."""
    family = [row for row in rows if row["p"] is not None]
    for row, adjusted in zip(family, holm([r["p"] for r in family])):
        row["holm_p"] = adjusted
    for row in rows:
        c = row.pop("comparison")
        if row["p"] is None:
            row["holm_p"], row["verdict"], row["reason"] = None, "inconclusive", c.reason
            continue
        row["verdict"], row["reason"] = decide(row["holm_p"], c.p_equivalence, c.direction, c.margin, alpha,
                                               c.lower_is_better)
        row["tost_p"] = c.p_equivalence


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
            "(2 or more for a verdict). ")
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


def _compared(comparison) -> dict[str, Any]:
    """The numbers of a ``harness.stats`` comparison as table cells (changes in %)."""
    pct = (lambda x: None if x is None else 100 * x)
    c = comparison
    return {"change": pct(c.mean_change), "ci_low": pct(c.ci_low), "ci_high": pct(c.ci_high),
            "ci_half": None if c.ci_low is None else 50 * (c.ci_high - c.ci_low), "p": c.p_difference,
            "tost_p": c.p_equivalence, "comparison": c}


def _values(seeds: dict[int, RunRecord], metric: str) -> dict[int, float]:
    return {s: run.metrics[metric] for s, run in seeds.items()}


def _row(dataset, axis, value_a, value_b, seeds_a, seeds_b, metric) -> dict[str, Any]:
    seeds = sorted(set(seeds_a) & set(seeds_b))
    a = [seeds_a[s].metrics[metric] for s in seeds]
    b = [seeds_b[s].metrics[metric] for s in seeds]
    # Every seed either variant finished: one the other lacks makes the row inconclusive.
    c = _compare(_values(seeds_b, metric), _values(seeds_a, metric), _name(seeds_b), _name(seeds_a), metric,
                 dataset)
    raw = (None if c.ci_low is None else abs(statistics.fmean(a)) * (c.ci_high - c.ci_low) / 2)
    runs = [seeds_a[s].run_id for s in seeds] + [seeds_b[s].run_id for s in seeds]
    return {
        "eval": seeds_a[seeds[0]].eval_label, "dataset": dataset, "axis": axis, "from": value_a, "to": value_b,
        "variant_a": _name(seeds_a), "variant_b": _name(seeds_b), "n": c.n,
        "a": statistics.fmean(a), "b": statistics.fmean(b), "raw_half": raw, **_compared(c), "runs": runs,
    }


def _compare(arm, base, arm_name, base_name, metric, scope, pooled: bool = False):
    from harness.stats import compare_paired, compare_pooled
    from harness.stats.design import lower_is_better

    lower = lower_is_better(metric)
    common = dict(arm=arm_name, base=base_name, metric=metric, lower_is_better=bool(lower), margin=MARGIN,
                  scope=scope)
    c = compare_pooled(arm, base, **common) if pooled else compare_paired(arm, base, **common)
    if lower is None:  # no better side: no verdict
        return dataclasses.replace(c, p_difference=None, p_adjusted=None, p_equivalence=None, mean_change=None,
                                   ci_low=None, ci_high=None, verdict="inconclusive",
                                   reason=f"{metric} has no direction for one class, so it is not compared")
    return c


def _pooled_row(axis, value_a, value_b, per_class: dict[str, tuple], metric) -> dict[str, Any] | None:
    arm = {d: _values(per_class[d][1], metric) for d in sorted(per_class)}
    base = {d: _values(per_class[d][0], metric) for d in sorted(per_class)}
    runs_a = [r for d in sorted(per_class) for r in per_class[d][0].values()]
    runs_b = [r for d in sorted(per_class) for r in per_class[d][1].values()]
    c = _compare(arm, base, _names(runs_b), _names(runs_a), metric, f"{len(per_class)} classes pooled",
                 pooled=True)
    by_class = []
    for d in sorted(per_class):
        one = _compare(arm[d], base[d], "", "", metric, d)
        by_class.append(f"{d} " + ("—" if one.mean_change is None else _percent_text(100 * one.mean_change))
                        + f" ({one.n})")
    return {
        "eval": runs_a[0].eval_label, "axis": axis, "from": value_a, "to": value_b,
        "variant_a": _names(runs_a), "variant_b": _names(runs_b), "classes": len(per_class), "n": c.n,
        **_compared(c), "by_class": ", ".join(by_class),
        "runs": [r.run_id for r in runs_a] + [r.run_id for r in runs_b],
    }


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
