"""A campaign's verdicts: each arm against the base, in four words, as its plan declared them.

Every comparison is ``harness.stats``'s (:func:`compare_paired` within a class,
:func:`compare_pooled` over classes, runs paired by (class, seed), values as a
fraction of the base's mean on the class): better, worse, equivalent (TOST
within ±margin) or inconclusive. Confirmatory rows are the plan's declared
comparisons, pooled over classes, Holm-adjusted within the declared family;
every other row (other arms, other metrics, each class alone) is exploratory,
unadjusted. The control (the base's function under another name) gets its own
rows; a control judged better or worse means the seed noise is larger than
the tests assume, and the report says so at its top.

A comparison counts the pairs the plan ran (seeds x classes): a failed or
missing cell on either side makes it inconclusive, naming the seed, never a
number from fewer runs. Metrics compared: those with a direction
(``harness.stats.design.METRICS``: KID, FID; lower is better); IS never.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from harness.errors import ConfigError
from harness.stats import (
    Comparison,
    adjust_family,
    compare_paired,
    compare_pooled,
    iqm,
    normalise_by_base,
    probability_of_improvement,
    sd_from_pilot,
    stratified_bootstrap_ci,
)
from harness.stats.design import Hypotheses, lower_is_better
from harness.stats.plan_power import power_lines
from reports import plots
from reports.collect import RunRecord
from reports.render import Figure, Section
from reports.tables import Column, Table
from variants.control import find_control

COMPARED = ("kid", "fid")  # compared when logged, besides the declared metrics

COLUMNS = [
    Column("arm", "arm"), Column("base", "base"), Column("metric", "metric"), Column("scope", "scope"),
    Column("n", "pairs", "int"), Column("expected", "planned", "int"),
    Column("change", "change %", "float", round_to="ci_half"),
    Column("ci_low", "95% CI low %", "float", round_to="ci_half"),
    Column("ci_high", "95% CI high %", "float", round_to="ci_half"),
    Column("p", "p", "p"), Column("p_adjusted", "Holm p", "p"), Column("p_equivalence", "TOST p", "p"),
    Column("verdict", "verdict"), Column("reason", "why inconclusive"),
]


@dataclass
class Verdicts:
    """Every comparison of a campaign, sorted into what the report shows."""

    hypotheses: Hypotheses
    confirmatory: list[Comparison] = field(default_factory=list)
    exploratory: list[Comparison] = field(default_factory=list)
    control: list[Comparison] = field(default_factory=list)
    aggregates: list[dict] = field(default_factory=list)
    power: list[str] = field(default_factory=list)

    @property
    def flag(self) -> str:
        """The warning for the top of the report when the control differs from the base, else ''."""
        off = [c for c in self.control if c.verdict in ("better", "worse")]
        if not off:
            return ""
        return ("The A/A control differs from its base: " + "; ".join(c.sentence() for c in off)
                + ". The control computes the same function as the base, so this campaign's seed noise is larger "
                  "than its tests assume: read every verdict below with that in mind.")


def for_campaign(campaign, runs: list[RunRecord]) -> Verdicts:
    """The verdicts of a campaign (``reports.campaign.Campaign``) from its finished runs ``runs``.

    The plan's declared hypotheses when its parent run holds them; else the
    defaults: the first arm is the base, its control named when it ran, all exploratory.
    """
    arms = campaign.variants or sorted({r.variant for r in runs if r.variant})
    datasets = campaign.datasets or sorted({r.dataset for r in runs if r.dataset})
    seeds = campaign.seeds or sorted({r.seed for r in runs if r.seed is not None})
    if campaign.hypotheses:
        hypotheses = Hypotheses.from_dict(campaign.hypotheses)
    else:
        base = arms[0] if arms else ""
        hypotheses = Hypotheses(base=base, control=find_control(base, arms) if base else None, declared=False)
    return assess(runs, hypotheses, arms, datasets, seeds)


def by_class(runs: list[RunRecord], variant: str, metric: str, datasets: list[str], seeds: list[int]
             ) -> dict[str, dict[int, float | None]]:
    """``{class: {seed: final value}}`` of ``variant``; a planned seed without a finished value is None."""
    out: dict[str, dict[int, float | None]] = {d: {s: None for s in seeds} for d in datasets}
    for run in runs:  # newest first: the first value seen for a cell is kept
        if run.variant == variant and run.dataset in out and run.seed is not None:
            value = run.metrics.get(metric)
            if run.seed in out[run.dataset] and out[run.dataset][run.seed] is None:  # planned seeds only
                out[run.dataset][run.seed] = value
    return out


def assess(runs: list[RunRecord], hypotheses: Hypotheses, arms: list[str], datasets: list[str],
           seeds: list[int]) -> Verdicts:
    """Compare every arm with the base on every compared metric (module docstring); ``runs`` are finished."""
    base = hypotheses.base
    logged = {k for r in runs for k in r.metrics}
    metrics = list(dict.fromkeys([*hypotheses.metrics, *(m for m in COMPARED if m in logged)]))
    out = Verdicts(hypotheses)
    confirmatory = {(p.arm, p.metric): p for p in hypotheses.confirmatory()}
    declared = []
    for metric in metrics:
        lower = lower_is_better(metric)
        base_values = by_class(runs, base, metric, datasets, seeds)
        for arm in [a for a in arms if a != base]:
            arm_values = by_class(runs, arm, metric, datasets, seeds)
            primary = confirmatory.get((arm, metric))
            alpha = primary.alpha if primary else hypotheses.alpha
            common = dict(arm=arm, base=base, metric=metric, lower_is_better=lower, margin=hypotheses.margin,
                          alpha=alpha)
            pooled = compare_pooled(arm_values, base_values, expected_pairs=len(seeds) * len(datasets), **common)
            if len(seeds) < 2:  # pairs from several classes, yet no seed-to-seed spread within any
                pooled = _refused(pooled, f"{len(seeds)} seed per cell; seeds are the replicates, and a paired "
                                          "test needs at least 2")
            per_class = [compare_paired(arm_values[d], base_values[d], expected_pairs=len(seeds), scope=d,
                                        **common) for d in datasets]
            if primary:
                declared.append(_one_sided(pooled, primary.direction))
            elif arm == hypotheses.control:
                out.control.append(pooled)
            else:
                out.exploratory.append(pooled)
            (out.control if arm == hypotheses.control else out.exploratory).extend(per_class)
            out.aggregates.append(_aggregate(arm, base, metric, lower, arm_values, base_values))
    for alpha in sorted({c.alpha for c in declared}):  # Holm within the family, one alpha at a time
        out.confirmatory += adjust_family([c for c in declared if c.alpha == alpha])
    out.power = power_lines(hypotheses, len(seeds), len(datasets), *_spread(runs, hypotheses, arms, datasets, seeds))
    return out


def _refused(c: Comparison, reason: str) -> Comparison:
    return dataclasses.replace(c, mean_change=None, ci_low=None, ci_high=None, p_difference=None, p_adjusted=None,
                               p_equivalence=None, direction=None, verdict="inconclusive", reason=reason)


def _one_sided(c: Comparison, direction: str) -> Comparison:
    """A declared one-sided comparison: the t-test's p for the declared side (half the two-sided p when
    the mean lies on that side, else 1 - half); the verdict follows from it when the family is adjusted."""
    if direction == "two-sided" or c.p_difference is None or c.direction is None:
        return c
    on_side = (c.direction < 0) == (direction == "lower")
    p = c.p_difference / 2 if on_side else 1 - c.p_difference / 2
    return dataclasses.replace(c, p_difference=p, p_adjusted=p, scope=f"{c.scope}, one-sided: {direction}")


def _aggregate(arm, base, metric, lower, arm_values, base_values) -> dict:
    """IQM of the arm's values as a fraction of the base's class mean, and P(arm beats base), with intervals."""
    row = {"arm": arm, "base": base, "metric": metric}
    full = [d for d in arm_values if all(v is not None for v in [*arm_values[d].values(), *base_values[d].values()])]
    if len(full) < len(arm_values) or not full:
        row["reason"] = "failed or missing cells: no aggregate from fewer runs than planned"
        return row
    arm_by = {d: np.array(list(arm_values[d].values()), dtype=float) for d in full}
    base_by = {d: np.array(list(base_values[d].values()), dtype=float) for d in full}
    try:
        scores = normalise_by_base(arm_by, base_by)
    except ConfigError as exc:
        row["reason"] = str(exc)
        return row
    interval = stratified_bootstrap_ci(scores, lambda s: iqm(np.concatenate(list(s.values()))))
    poi = probability_of_improvement(arm_by, base_by, lower_is_better=lower)
    row.update(iqm=interval.estimate, iqm_low=interval.low, iqm_high=interval.high, poi=poi.estimate,
               poi_low=poi.low, poi_high=poi.high, n=sum(v.size for v in arm_by.values()),
               scores=np.concatenate(list(scores.values())))
    return row


def _spread(runs, hypotheses: Hypotheses, arms, datasets, seeds) -> tuple[float | None, str]:
    """The seed-to-seed sd of normalised paired differences: this campaign's control against its base
    when it ran, else the declared guess."""
    metric = hypotheses.metrics[0]
    if hypotheses.control in arms:
        base = by_class(runs, hypotheses.base, metric, datasets, seeds)
        control = by_class(runs, hypotheses.control, metric, datasets, seeds)
        try:
            return sd_from_pilot(base, control), f"this campaign's control against its base, {metric}"
        except ConfigError:
            pass
    if hypotheses.sd_guess is not None:
        return hypotheses.sd_guess, "the plan's declared sd_guess"
    return None, "no control runs to measure the spread and no sd_guess declared"


# --- what the report shows ---------------------------------------------------------------------
def _row(c: Comparison) -> dict:
    pct = (lambda x: None if x is None else 100 * x)
    return {"arm": c.arm, "base": c.base, "metric": c.metric, "scope": c.scope, "n": c.n, "expected": c.expected,
            "change": pct(c.mean_change), "ci_low": pct(c.ci_low), "ci_high": pct(c.ci_high),
            "ci_half": None if c.ci_low is None else 50 * (c.ci_high - c.ci_low),
            "p": c.p_difference, "p_adjusted": c.p_adjusted if c.family_size > 1 else None,
            "p_equivalence": c.p_equivalence, "verdict": c.verdict, "reason": c.reason}


def _table(name: str, title: str, comparisons: list[Comparison], note: str, empty: str) -> Table:
    return Table(name=name, title=title, columns=COLUMNS, rows=[_row(c) for c in comparisons], note=note,
                 empty=empty)


NOTE = ("change: the mean paired difference (arm - base) as a percent of the base's mean on the class (pooled: the "
        "mean over classes of each class's mean); p: paired t-test within a class; pooled: a stratified t with "
        "classes as blocks (variance from the spread within each class, Welch-Satterthwaite degrees of freedom); "
        "CI: the t interval of that same test; TOST p: equivalence within ±{margin:g}%. Verdict from the tests "
        "alone at alpha {alpha:g}: better/worse when the (Holm) p < alpha, else equivalent when TOST p < alpha, "
        "else inconclusive. Lower is better for KID and FID; IS is not compared (no direction for one class).")


def profile_figure(v: Verdicts, folder) -> Figure | None:
    """The performance profile of each arm on the first compared metric, or None when none has scores."""
    metric = next((r["metric"] for r in v.aggregates if "scores" in r), None)
    if metric is None:
        return None
    scores = {r["arm"]: r["scores"] for r in v.aggregates if r["metric"] == metric and "scores" in r}
    path = plots.performance_profiles(scores, v.hypotheses.base, metric, folder / f"profile_{metric}.png",
                                      lower_is_better=bool(lower_is_better(metric)))
    return Figure(f"Performance profiles, {metric.upper()}", path,
                  f"For each threshold t (a fraction of the base's class mean), the share of an arm's runs "
                  f"scoring {'below' if lower_is_better(metric) else 'above'} it; a curve above another is better "
                  "over the whole distribution of runs (Agarwal et al. 2021).") if path else None


def sections(v: Verdicts, profile: Figure | None = None) -> list[Section]:
    """The report's sections: confirmatory, the control, exploratory, power, robust aggregates."""
    h = v.hypotheses
    note = NOTE.format(margin=100 * h.margin, alpha=h.alpha)
    declared_text = ("Declared in the plan's [hypotheses] before the runs: "
                     + ("; ".join(f"{p.arm} vs {h.base} on {p.metric}, {p.direction}, alpha {p.alpha:g}"
                                  for p in h.confirmatory()) or "no primary comparison") + "."
                     if h.declared else
                     "The plan declared no [hypotheses]: every result below is exploratory.")
    out = [
        Section("Confirmatory comparisons (declared)", text=declared_text,
                bullets=[c.sentence() for c in v.confirmatory],
                tables=[_table("confirmatory", "Confirmatory comparisons (declared)", v.confirmatory,
                               note + f" Pooled over classes; Holm over the {len(v.confirmatory)} declared "
                                      "comparison(s).", "No comparison was declared.")]),
        Section("A/A control", text=(f"Control arm: {h.control}, the base's function under another name; its "
                                     "verdict should be equivalent or inconclusive." if h.control else
                                     "No control arm in this campaign (control = false, or a plan without "
                                     "[hypotheses] that did not run one)."),
                bullets=[c.sentence() for c in v.control if "pooled" in c.scope],
                tables=[_table("control", "A/A control against the base", v.control, note, "No control arm.")]
                if h.control else []),
        Section("Exploratory comparisons", text=("Not declared in advance, p unadjusted: leads for a later plan, "
                                                 "not findings."),
                bullets=[c.sentence() for c in v.exploratory if "pooled" in c.scope],
                tables=[_table("exploratory", "Exploratory comparisons", v.exploratory, note,
                               "No other arm to compare.")]),
        Section("Power", bullets=v.power),
        Section("Robust aggregates", tables=[aggregates_table(v.aggregates)], figures=[profile] if profile else []),
    ]
    return out


def aggregates_table(rows: list[dict]) -> Table:
    columns = [Column("arm", "arm"), Column("metric", "metric"), Column("n", "runs", "int"),
               Column("iqm", "IQM (x base)", "float"), Column("iqm_low", "95% low", "float"),
               Column("iqm_high", "95% high", "float"), Column("poi", "P(better than base)", "float"),
               Column("poi_low", "95% low", "float"), Column("poi_high", "95% high", "float"),
               Column("reason", "not computed because")]
    return Table(name="aggregates", title="Robust aggregates per arm", columns=columns,
                 rows=[{k: v for k, v in r.items() if k != "scores"} for r in rows],
                 note=("IQM: interquartile mean of the arm's runs, each divided by the base's mean on its class "
                       "(1 = the base's value); P(better than base): the share of (arm run, base run) pairs of a "
                       "class where the arm's value is better, averaged over classes (0.5: neither tends to "
                       "win). Intervals: 95% class-stratified bootstrap (Agarwal et al. 2021)."),
                 empty="No arm to aggregate.")
