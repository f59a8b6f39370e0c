"""Is an arm better than, worse than or equivalent to a base? Runs paired by (class, seed).

What is tested. Within a class, each seed gives one pair (arm run, base run) and
one normalised difference ``d = (arm - base) / |mean(base over the class's
seeds)|`` (a fraction of the base's value; see :mod:`.normalise`). Then:

* difference: a two-sided one-sample t-test of mean(d) = 0, the same as a paired
  t-test of arm against base (``scipy.stats.ttest_1samp``; scaling does not change
  t). This p-value is the one a family correction (:mod:`.family`, Holm) adjusts.
* equivalence: TOST, two one-sided t-tests that mean(d) > -margin and
  mean(d) < +margin (``statsmodels`` ``DescrStatsW.ttost_mean``, what
  ``ttost_paired`` computes). Its p-value is the larger of the two one-sided p's.
* interval: mean(d) with its (1 - alpha) t-interval; it excludes 0 exactly when
  the unadjusted difference test rejects.

Pooled over classes (:func:`compare_pooled`) every class is normalised by its
own base mean and is a block: the estimate is the mean over classes of each
class's mean d (each class weighs the same), and its standard error comes from
the spread of d within each class only, sum(s_c^2 / n_c) / C^2, with
Welch-Satterthwaite degrees of freedom (a stratified t). The t-test, TOST and
(1 - alpha) interval all use that one statistic, so the interval excludes 0
exactly when the unadjusted test rejects; with one class it is the paired
t-test above. Differences between classes in how large the effect is are not
noise here (each class is compared with itself). A class with fewer than two
pairs has no spread and makes the pooled comparison inconclusive.

The verdict comes from the tests alone, at ``alpha``: adjusted p_difference <
alpha → "better" or "worse" (by the sign of the mean and ``lower_is_better``);
else p_equivalence < alpha → "equivalent" (within ±margin); else
"inconclusive". A comparison with missing or failed runs (fewer complete pairs
than expected), fewer than 2 pairs, or a base mean near zero is "inconclusive"
with a ``reason`` and no numbers, never numbers from fewer runs than planned.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from harness.errors import ConfigError
from harness.stats.normalise import Runs, base_scale_problem, pair_up

VERDICTS = ("better", "worse", "equivalent", "inconclusive")


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One arm against one base on one metric: the numbers and the verdict they support.

    Changes are fractions of the base's value (-0.231 = 23.1 % below the base).
    The numeric fields are None when the comparison was refused (see ``reason``).
    ``p_adjusted`` equals ``p_difference`` until :func:`harness.stats.family.adjust_family`
    Holm-adjusts it within a family of ``family_size`` comparisons.
    """

    arm: str
    base: str
    metric: str
    n: int  # complete pairs used
    expected: int  # pairs planned
    mean_change: float | None
    ci_low: float | None
    ci_high: float | None
    p_difference: float | None
    p_adjusted: float | None
    p_equivalence: float | None
    margin: float
    alpha: float
    lower_is_better: bool
    verdict: str
    reason: str = ""  # why the verdict is not better/worse/equivalent; "" when it is
    scope: str = ""  # e.g. the class, or "3 classes pooled"
    classes: int = 1
    family_size: int = 1  # comparisons in the Holm family; 1 = unadjusted
    direction: float | None = None  # mean of all normalised pairs: the t-test's sign

    def sentence(self) -> str:
        """The comparison in one line, using only its verdict word and its numbers."""
        head = f"{self.arm} vs {self.base}, {self.metric}" + (f" ({self.scope})" if self.scope else "")
        if self.mean_change is None:
            return f"{head}: {self.verdict}, {self.reason}"
        parts = [f"{head}: {self.verdict}, {100 * self.mean_change:+.1f}%"]
        if self.ci_low is not None and self.ci_high is not None:
            parts[0] += (f" ({100 * (1 - self.alpha):g}% CI {100 * self.ci_low:.1f}% "
                         f"to {100 * self.ci_high:.1f}%)")
        parts.append(f"n = {self.n} pairs" + (f" in {self.classes} classes" if self.classes > 1 else ""))
        if self.p_adjusted is not None:
            label = f"Holm-adjusted p ({self.family_size} comparisons)" if self.family_size > 1 else "p"
            parts.append(f"{label} {_p(self.p_adjusted)}")
        if self.verdict in ("equivalent", "inconclusive") and self.p_equivalence is not None:
            parts.append(f"TOST p for ±{100 * self.margin:g}% {_p(self.p_equivalence)}")
        if self.reason and self.verdict == "inconclusive" and self.p_adjusted is None:
            parts.append(self.reason)
        return ", ".join(parts)


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


@dataclasses.dataclass(frozen=True)
class Tests:
    """The tests on normalised differences d: mean, (1 - alpha) t-interval, p's (None: no spread)."""

    n: int
    mean: float
    ci_low: float | None
    ci_high: float | None
    p_difference: float | None
    p_equivalence: float | None


def difference_tests(d: np.ndarray, margin: float, alpha: float) -> Tests:
    """The paired t-test, TOST within ±``margin`` and the t-interval for the differences ``d`` (n >= 2).

    When the differences have no spread (all equal) the t statistics are
    undefined: the interval and p-values are None.
    """
    from scipy import stats
    from statsmodels.stats.weightstats import DescrStatsW

    d = np.asarray(d, dtype=float)
    n, mean = d.size, float(d.mean())
    sd = float(d.std(ddof=1))
    if not sd > 0:
        return Tests(n, mean, None, None, None, None)
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    p_difference = float(stats.ttest_1samp(d, 0.0).pvalue)
    p_equivalence = float(DescrStatsW(d).ttost_mean(-margin, margin)[0])
    return Tests(n, mean, mean - half, mean + half, p_difference, p_equivalence)


def stratified_tests(d_by_class: list[np.ndarray], margin: float, alpha: float) -> Tests:
    """The stratified t-test, TOST and t-interval of the mean over classes of each class's mean
    difference (every class with >= 2 differences; the rule in the module docstring)."""
    from scipy import stats

    c = len(d_by_class)
    means = np.array([float(np.mean(d)) for d in d_by_class])
    shares = np.array([float(np.var(d, ddof=1)) / len(d) / c ** 2 for d in d_by_class])  # var of each term
    estimate, variance = float(means.mean()), float(shares.sum())
    if not variance > 0:
        return Tests(sum(len(d) for d in d_by_class), estimate, None, None, None, None)
    se = math.sqrt(variance)
    df = variance ** 2 / float(sum(share ** 2 / (len(d) - 1) for share, d in zip(shares, d_by_class)))
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    p_difference = float(2 * stats.t.sf(abs(estimate) / se, df))
    # TOST: mean > -margin and mean < +margin, each one-sided at the same t; the larger p counts.
    p_equivalence = float(max(stats.t.sf((estimate + margin) / se, df), stats.t.cdf((estimate - margin) / se, df)))
    return Tests(sum(len(d) for d in d_by_class), estimate, estimate - half, estimate + half, p_difference,
                 p_equivalence)


def decide(p_adjusted: float | None, p_equivalence: float | None, direction: float | None, margin: float,
           alpha: float, lower_is_better: bool) -> tuple[str, str]:
    """The verdict and its reason from the tests alone (rule in the module docstring)."""
    if p_adjusted is None or p_equivalence is None or direction is None:
        return "inconclusive", "the paired differences have no spread, so no t-test can be made"
    if p_adjusted < alpha:
        improved = (direction < 0) == lower_is_better
        return ("better" if improved else "worse"), ""
    if p_equivalence < alpha:
        return "equivalent", ""
    return "inconclusive", (f"neither a difference nor equivalence within ±{100 * margin:g}% is shown "
                            f"at alpha {alpha:g}")


def _check(margin: float, alpha: float, expected: int | None) -> None:
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin > 0):
        raise ConfigError(f"margin must be a positive fraction of the base's value (e.g. 0.10 for ±10%), "
                          f"not {margin!r}.")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1 (e.g. 0.05), not {alpha!r}.")
    if expected is not None and (int(expected) != expected or expected < 0):
        raise ConfigError(f"expected_pairs must be a whole number of pairs, not {expected!r}.")


def _refused(common: dict, n: int, expected: int, reason: str) -> Comparison:
    return Comparison(n=n, expected=expected, mean_change=None, ci_low=None, ci_high=None, p_difference=None,
                      p_adjusted=None, p_equivalence=None, verdict="inconclusive", reason=reason, **common)


def _missing_reason(n: int, expected: int, notes: list[str]) -> str | None:
    if n > expected:
        raise ConfigError(f"expected_pairs is {expected} but {n} complete pairs were given; "
                          "pass the number of pairs the plan runs.")
    if n < expected:
        shown = "; ".join(notes[:3]) + ("; ..." if len(notes) > 3 else "")
        return f"{expected - n} of {expected} pairs missing" + (f" ({shown})" if shown else "")
    if n < 2:
        return f"only {n} complete pair(s); a paired test needs at least 2"
    return None


def compare_paired(arm_values: Runs, base_values: Runs, *, arm: str, base: str, metric: str,
                   lower_is_better: bool, margin: float = 0.10, alpha: float = 0.05,
                   expected_pairs: int | None = None, scope: str = "") -> Comparison:
    """Compare an arm with a base within one class, runs paired by seed.

    ``arm_values`` and ``base_values`` are ``{seed: value}`` mappings (or equal-length
    sequences paired by position); None or NaN marks a failed run. ``expected_pairs``
    is the number of pairs the plan ran (default: every seed either side names).
    ``margin`` bounds equivalence as a fraction of the base's value. ``arm``,
    ``base``, ``metric`` and ``scope`` (e.g. the class) are labels. Returns a
    :class:`Comparison`; what is tested is in the module docstring.
    """
    _check(margin, alpha, expected_pairs)
    common = dict(arm=arm, base=base, metric=metric, margin=float(margin), alpha=float(alpha),
                  lower_is_better=bool(lower_is_better), scope=scope)
    a, b, notes = pair_up(arm_values, base_values)
    expected = len(a) + len(notes) if expected_pairs is None else int(expected_pairs)
    reason = _missing_reason(len(a), expected, notes) or base_scale_problem(b)
    if reason:
        return _refused(common, len(a), expected, reason)
    d = (a - b) / abs(float(b.mean()))
    tests = difference_tests(d, margin, alpha)
    verdict, why = decide(tests.p_difference, tests.p_equivalence, tests.mean if tests.p_difference is not None
                          else None, margin, alpha, lower_is_better)
    return Comparison(n=len(a), expected=expected, mean_change=tests.mean, ci_low=tests.ci_low,
                      ci_high=tests.ci_high, p_difference=tests.p_difference, p_adjusted=tests.p_difference,
                      p_equivalence=tests.p_equivalence, verdict=verdict, reason=why, direction=tests.mean,
                      **common)


def compare_pooled(arm_by_class: Mapping[str, Runs], base_by_class: Mapping[str, Runs], *, arm: str, base: str,
                   metric: str, lower_is_better: bool, margin: float = 0.10, alpha: float = 0.05,
                   expected_pairs: int | None = None, scope: str = "") -> Comparison:
    """Compare an arm with a base over several classes, runs paired by (class, seed).

    ``arm_by_class`` and ``base_by_class`` map each class to its runs, as
    :func:`compare_paired` takes them; a class only one side has counts as missing
    runs. ``expected_pairs`` is the plan's total over all classes (default: every
    (class, seed) either side names). Returns a :class:`Comparison` whose
    ``mean_change`` weighs classes equally; what is tested is in the module docstring.
    """
    _check(margin, alpha, expected_pairs)
    classes = sorted(set(arm_by_class) | set(base_by_class), key=str)
    common = dict(arm=arm, base=base, metric=metric, margin=float(margin), alpha=float(alpha),
                  lower_is_better=bool(lower_is_better), scope=scope or f"{len(classes)} classes pooled",
                  classes=len(classes))
    pairs, notes = {}, []
    for c in classes:
        a, b, missing = pair_up(arm_by_class.get(c, {}), base_by_class.get(c, {}))
        notes += [f"{c} {note}" for note in missing]
        if len(a):
            pairs[c] = (a, b)
    n = sum(len(a) for a, _ in pairs.values())
    expected = n + len(notes) if expected_pairs is None else int(expected_pairs)
    reason = _missing_reason(n, expected, notes)
    for c, (_, b) in pairs.items():
        reason = reason or base_scale_problem(b, f"on {c}")
    if reason:
        return _refused(common, n, expected, reason)
    d_by_class = {c: (a - b) / abs(float(b.mean())) for c, (a, b) in pairs.items()}
    if min(len(d) for d in d_by_class.values()) < 2:
        return _refused(common, n, expected, "a class has fewer than 2 complete pairs, so its spread is unknown")
    tests = stratified_tests(list(d_by_class.values()), margin, alpha)
    verdict, why = decide(tests.p_difference, tests.p_equivalence, tests.mean, margin, alpha, lower_is_better)
    return Comparison(n=n, expected=expected, mean_change=tests.mean, ci_low=tests.ci_low, ci_high=tests.ci_high,
                      p_difference=tests.p_difference, p_adjusted=tests.p_difference,
                      p_equivalence=tests.p_equivalence, verdict=verdict, reason=why, direction=tests.mean,
                      **common)
