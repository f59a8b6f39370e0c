"""harness.stats against independent references: SciPy, statsmodels, worked examples and hand formulas."""

from __future__ import annotations

import ast
import dataclasses
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from harness.errors import ConfigError
from harness.stats import (
    VERDICTS,
    Comparison,
    adjust_family,
    can_detect,
    compare_paired,
    compare_pooled,
    expected_best,
    holm,
    iqm,
    minimum_detectable_effect,
    normalise_by_base,
    pairs_needed,
    performance_profile,
    power_of,
    probability_of_improvement,
    sd_from_pilot,
    share_within,
    stratified_bootstrap_ci,
)
from harness.stats.paired import difference_tests

ROOT = Path(__file__).resolve().parent.parent
LABELS = dict(arm="bn", base="baseline", metric="KID")

# Student (1908), the Cushny & Peebles sleep data: extra hours of sleep under two drugs, same 10 patients.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def _compare(arm, base, lower_is_better=True, **kwargs):
    return compare_paired(arm, base, lower_is_better=lower_is_better, **LABELS, **kwargs)


# --- paired comparison ------------------------------------------------------------------------------
def test_paired_p_values_and_interval_match_scipy_and_statsmodels():
    rng = np.random.default_rng(3)
    base = rng.normal(0.05, 0.004, 9)
    arm = base * rng.normal(0.97, 0.04, 9)
    result = _compare({s: v for s, v in enumerate(arm)}, {s: v for s, v in enumerate(base)}, margin=0.1, alpha=0.1)
    scale = base.mean()
    x, y = arm / scale, base / scale
    d = x - y
    assert result.n == result.expected == 9
    assert result.mean_change == pytest.approx(d.mean(), rel=1e-12)
    assert result.p_difference == pytest.approx(stats.ttest_rel(x, y).pvalue, rel=1e-9)
    assert result.p_difference == pytest.approx(stats.ttest_rel(arm, base).pvalue, rel=1e-9)  # scale-free
    assert result.p_equivalence == pytest.approx(ttost_paired(x, y, -0.1, 0.1)[0], rel=1e-9)
    low, high = stats.t.interval(0.9, 8, loc=d.mean(), scale=stats.sem(d))
    assert (result.ci_low, result.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert result.p_adjusted == result.p_difference and result.family_size == 1


def test_students_sleep_data_paired_t_test():
    tests = difference_tests(np.subtract(SLEEP_2, SLEEP_1), margin=1.0, alpha=0.05)
    assert tests.mean == pytest.approx(1.58)
    assert tests.p_difference == pytest.approx(0.002833, abs=2e-6)  # t = 4.06 on 9 df
    assert 2 * stats.t.sf(4.0621, 9) == pytest.approx(tests.p_difference, rel=1e-3)
    # The same through compare_paired: normalising by the drug-1 mean (0.75) changes no p-value.
    result = _compare(SLEEP_2, SLEEP_1, lower_is_better=False)
    assert result.p_difference == pytest.approx(tests.p_difference, rel=1e-9)
    assert result.mean_change * 0.75 == pytest.approx(1.58)
    # R: t.test(extra ~ group, paired = TRUE) gives the 95 % CI 0.700 to 2.460 hours.
    assert result.ci_low * 0.75 == pytest.approx(0.7001142, abs=1e-6)
    assert result.ci_high * 0.75 == pytest.approx(2.4598858, abs=1e-6)
    assert result.verdict == "better"


def test_tost_matches_a_hand_computation_and_statsmodels():
    d = np.array([0.01, -0.01, 0.02, -0.02, 0.0, 0.015, -0.005, 0.01])  # all well inside ±10 %
    base = np.full(d.size, 2.0)
    arm = base + d * 2.0  # normalised by the base mean 2.0 this gives back d
    n, mean, se = d.size, d.mean(), d.std(ddof=1) / math.sqrt(d.size)
    by_hand = max(stats.t.sf((mean + 0.1) / se, n - 1), stats.t.sf((0.1 - mean) / se, n - 1))
    result = _compare(list(arm), list(base), margin=0.1)
    assert result.p_equivalence == pytest.approx(by_hand, rel=1e-9)
    assert result.p_equivalence == pytest.approx(ttost_paired(arm / 2, base / 2, -0.1, 0.1)[0], rel=1e-9)
    assert result.p_equivalence < 1e-6 and result.verdict == "equivalent"
    # Differences spread over ±30 %: equivalence within ±10 % cannot be shown.
    wide = _compare(list(base + d * 30 * 2.0), list(base), margin=0.1)
    assert wide.p_equivalence > 0.05 and wide.verdict == "inconclusive"


def test_verdicts_for_constructed_data():
    rng = np.random.default_rng(0)
    base = rng.normal(60.0, 3.0, 10)
    better = _compare(list(base * rng.normal(0.7, 0.03, 10)), list(base))
    worse = _compare(list(base * rng.normal(1.3, 0.03, 10)), list(base))
    assert (better.verdict, worse.verdict) == ("better", "worse")
    assert better.mean_change < -0.2 and worse.mean_change > 0.2
    # Higher-is-better flips the words, not the numbers.
    flipped = _compare(list(base * rng.normal(0.7, 0.03, 10)), list(base), lower_is_better=False)
    assert flipped.verdict == "worse"
    # Same within noise, many seeds, symmetric noise (mean change exactly 0): equivalent.
    noise = np.tile([0.02, -0.02, 0.01, -0.01], 10)
    big = rng.normal(60.0, 3.0, 40)
    same = _compare(list(big + noise * big.mean()), list(big))
    assert same.p_difference > 0.5 and same.verdict == "equivalent"
    # Three noisy seeds: neither shown.
    tiny = _compare([50.0, 75.0, 58.0], [60.0, 55.0, 62.0])
    assert tiny.verdict == "inconclusive" and tiny.mean_change is not None and "neither" in tiny.reason
    assert {better.verdict, worse.verdict, same.verdict, tiny.verdict} == set(VERDICTS)


def test_negative_kid_base_keeps_the_direction():
    base = [-0.010, -0.012, -0.008, -0.011]  # KID is unbiased, so a mean below 0 happens
    arm = [b - 0.004 + e for b, e in zip(base, [0.0002, -0.0001, 0.0001, -0.0002])]  # lower: better
    result = _compare(arm, base)
    assert result.verdict == "better" and result.mean_change == pytest.approx(-0.004 / 0.01025, rel=1e-6)


@pytest.mark.parametrize("arm, base, expected, words", [
    ([0.1], [0.2], None, "only 1 complete pair"),
    ({1: 0.1, 2: 0.2, 3: 0.15}, {1: 0.2, 2: 0.3, 3: 0.2, 4: 0.3}, None, "1 of 4 pairs missing (seed 4: arm"),
    ([0.1, float("nan"), 0.2], [0.2, 0.3, 0.2], None, "1 of 3 pairs missing (seed 1: arm"),
    ([0.1, 0.2, 0.3], [0.2, 0.3, 0.4], 5, "2 of 5 pairs missing"),
    ([0.1, 0.2, 0.3], [0.001, -0.002, 0.0005], None, "of zero"),
])
def test_missing_runs_or_a_zero_base_give_a_reason_and_no_numbers(arm, base, expected, words):
    result = _compare(arm, base, expected_pairs=expected)
    assert result.verdict == "inconclusive" and words in result.reason
    assert all(getattr(result, f) is None for f in ("mean_change", "ci_low", "ci_high", "p_difference",
                                                    "p_adjusted", "p_equivalence"))
    assert result.sentence() == f"bn vs baseline, KID: inconclusive, {result.reason}"


def test_bad_inputs_are_config_errors():
    with pytest.raises(ConfigError, match="paired by position"):
        _compare([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="margin"):
        _compare([1.0, 2.0], [1.0, 2.0], margin=0)
    with pytest.raises(ConfigError, match="expected_pairs is 2 but 3"):
        _compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], expected_pairs=2)


def test_sentence_uses_the_verdict_and_numbers_only():
    c = Comparison(arm="bn", base="animals_baseline", metric="KID", n=12, expected=12, mean_change=-0.231,
                   ci_low=-0.35, ci_high=-0.112, p_difference=0.001, p_adjusted=0.004, p_equivalence=0.9,
                   margin=0.1, alpha=0.05, lower_is_better=True, verdict="better", family_size=3)
    assert c.sentence() == ("bn vs animals_baseline, KID: better, -23.1% (95% CI -35.0% to -11.2%), "
                            "n = 12 pairs, Holm-adjusted p (3 comparisons) = 0.004")
    equivalent = dataclasses.replace(c, mean_change=0.01, p_adjusted=0.8, p_equivalence=0.002,
                                     verdict="equivalent", family_size=1)
    assert equivalent.sentence().endswith("n = 12 pairs, p = 0.800, TOST p for ±10% = 0.002")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.verdict = "worse"


# --- pooled over classes ------------------------------------------------------------------------------
def _classes(seed=1, effect=0.8, seeds=5):
    rng = np.random.default_rng(seed)
    base = {c: {s: v for s, v in enumerate(rng.normal(m, 0.05 * m, seeds))} for c, m in
            (("cat", 50.0), ("dog", 80.0), ("car", 200.0))}
    arm = {c: {s: v * effect * rng.normal(1, 0.04) for s, v in runs.items()} for c, runs in base.items()}
    return arm, base


def _stratified_t(d_by_class, margin=0.10):
    """The stratified t written out independently: Welch-Satterthwaite over per-class variances."""
    c = len(d_by_class)
    terms = [np.var(d, ddof=1) / len(d) / c ** 2 for d in d_by_class]
    se = np.sqrt(sum(terms))
    df = sum(terms) ** 2 / sum(t ** 2 / (len(d) - 1) for t, d in zip(terms, d_by_class))
    est = np.mean([np.mean(d) for d in d_by_class])
    return est, se, df


def test_pooled_weighs_classes_equally_and_blocks_by_class():
    arm, base = _classes()
    arm["car"] = {s: v for s, v in list(arm["car"].items())[:3]}  # unequal seeds per class...
    base["car"] = {s: v for s, v in list(base["car"].items())[:3]}
    result = compare_pooled(arm, base, lower_is_better=True, **LABELS)
    d = {c: (np.array(list(arm[c].values())) - np.array(list(base[c].values())))
         / np.mean(list(base[c].values())) for c in base}
    assert result.n == 13 and result.classes == 3 and result.verdict == "better"
    assert result.mean_change == pytest.approx(np.mean([v.mean() for v in d.values()]))  # class means, equal weight
    est, se, df = _stratified_t(list(d.values()))
    assert result.p_difference == pytest.approx(2 * stats.t.sf(abs(est) / se, df), rel=1e-9)
    half = stats.t.ppf(0.975, df) * se
    assert (result.ci_low, result.ci_high) == pytest.approx((est - half, est + half))
    assert result.ci_low < result.mean_change < result.ci_high < 0


def test_pooled_over_one_class_is_the_paired_t_test():
    arm, base = _classes()
    one = compare_pooled({"cat": arm["cat"]}, {"cat": base["cat"]}, lower_is_better=True, **LABELS)
    paired = compare_paired(arm["cat"], base["cat"], lower_is_better=True, **LABELS)
    assert one.p_difference == pytest.approx(paired.p_difference, rel=1e-9)
    assert one.p_equivalence == pytest.approx(paired.p_equivalence, rel=1e-9)
    assert (one.ci_low, one.ci_high) == pytest.approx((paired.ci_low, paired.ci_high), rel=1e-9)


def test_the_pooled_interval_excludes_zero_only_when_the_test_rejects():
    # Three seeds per class, as in the published pilot: a percentile bootstrap over so few
    # seeds gave an interval excluding 0 beside p = 0.23; the stratified t cannot disagree.
    rng = np.random.default_rng(7)
    for trial in range(40):
        base = {c: {s: 100.0 + rng.normal(0, 10) for s in range(3)} for c in ("horses", "birds")}
        arm = {c: {s: v * (1 + rng.normal(-0.03, 0.08)) for s, v in runs.items()} for c, runs in base.items()}
        r = compare_pooled(arm, base, lower_is_better=True, **LABELS)
        assert (r.ci_high < 0 or r.ci_low > 0) == (r.p_difference < 0.05), trial


def test_pooled_with_one_seed_in_a_class_is_inconclusive():
    arm, base = _classes()
    arm["cat"], base["cat"] = {0: arm["cat"][0]}, {0: base["cat"][0]}
    result = compare_pooled(arm, base, lower_is_better=True, expected_pairs=11, **LABELS)
    assert result.verdict == "inconclusive" and "fewer than 2" in result.reason and result.p_difference is None


def test_pooled_with_a_missing_class_is_inconclusive():
    arm, base = _classes()
    del arm["dog"]
    result = compare_pooled(arm, base, lower_is_better=True, **LABELS)
    assert result.verdict == "inconclusive" and result.reason.startswith("5 of 15 pairs missing (dog seed 0")
    assert result.mean_change is None and result.p_difference is None


# --- Holm ---------------------------------------------------------------------------------------
def test_holm_by_hand_and_against_statsmodels():
    assert holm([0.01, 0.04, 0.03]) == [pytest.approx(0.03), pytest.approx(0.06), pytest.approx(0.06)]
    p = list(np.random.default_rng(5).uniform(0, 0.2, 7))
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    assert holm([0.01, None, 0.04]) == [pytest.approx(0.02), None, pytest.approx(0.04)]
    with pytest.raises(ConfigError):
        holm([1.5])


def test_adjust_family_recomputes_verdicts():
    rng = np.random.default_rng(0)
    base = rng.normal(60.0, 3.0, 6)
    arm = base * (1 - 0.05 + np.array([0.04, -0.03, 0.05, -0.04, 0.02, -0.03]))  # about -5 %, noisy
    one = _compare(list(arm), list(base), margin=0.5)
    assert 0.01 < one.p_difference < 0.05 and one.verdict == "better"
    others = [dataclasses.replace(one, arm=f"arm{i}") for i in range(3)]
    family = adjust_family([one, *others])
    assert family[0].p_adjusted == pytest.approx(min(1.0, 4 * one.p_difference))
    assert family[0].family_size == 4 and family[0].verdict == "equivalent"  # TOST p not adjusted
    assert family[0].p_equivalence == one.p_equivalence
    with pytest.raises(ConfigError, match="already adjusted"):
        adjust_family(family)
    with pytest.raises(ConfigError, match="twice"):
        adjust_family([one, one])


# --- robust aggregates -------------------------------------------------------------------------------
def test_iqm_by_hand():
    assert iqm([100, 1, 2, 3, 4, 5, 6, -50]) == pytest.approx(3.5)  # middle four: 2, 3, 4, 5
    x = [9, 1, 8, 2, 7, 3, 6, 4, 5, 100]  # n = 10: two cut from each end, 3..8 remain
    assert iqm(x) == pytest.approx(np.mean([3, 4, 5, 6, 7, 8]))
    with pytest.raises(ConfigError):
        iqm([1.0, float("nan")])


def test_stratified_bootstrap_keeps_each_class_and_matches_scipy_with_one_class():
    # Two classes of constant values: a stratified resample always holds 4 zeros and 4 hundreds.
    pooled_mean = stratified_bootstrap_ci({"a": [0.0] * 4, "b": [100.0] * 4},
                                          lambda s: float(np.concatenate(list(s.values())).mean()))
    assert tuple(pooled_mean) == (50.0, 50.0, 50.0)
    x = np.random.default_rng(2).normal(0, 1, 30)
    ours = stratified_bootstrap_ci({"only": x}, lambda s: float(s["only"].mean()), reps=4000)
    ref = stats.bootstrap((x,), np.mean, n_resamples=4000, method="percentile", random_state=1).confidence_interval
    width = ref.high - ref.low
    assert abs(ours.low - ref.low) < 0.1 * width and abs(ours.high - ref.high) < 0.1 * width


def test_probability_of_improvement_is_mann_whitney_u_over_nm():
    x = {"cat": [1.0, 2.0, 3.0, 3.0], "dog": [5.0, 6.0, 7.0]}
    y = {"cat": [2.0, 3.0, 4.0], "dog": [5.0, 8.0]}
    # Lower is better: P(x < y) is the U of y against x (U counts y > x, ties 1/2).
    per_class = [stats.mannwhitneyu(y[c], x[c]).statistic / (len(x[c]) * len(y[c])) for c in x]
    result = probability_of_improvement(x, y, lower_is_better=True, reps=500)
    assert result.estimate == pytest.approx(np.mean(per_class))
    assert result.low <= result.estimate <= result.high
    higher = probability_of_improvement(x, y, lower_is_better=False, reps=50)
    assert higher.estimate == pytest.approx(1 - result.estimate)  # ties split evenly both ways


def test_performance_profile_and_normalise_by_base():
    assert list(performance_profile([0.5, 0.9, 1.1, 1.3], [1.0, 1.2])) == [0.5, 0.75]
    assert list(performance_profile([0.5, 0.9, 1.1, 1.3], [1.0], lower_is_better=False)) == [0.5]
    scores = normalise_by_base({"cat": [40.0, 60.0]}, {"cat": [50.0, 50.0, 50.0]})
    assert list(scores["cat"]) == [0.8, 1.2]
    with pytest.raises(ConfigError, match="of zero"):
        normalise_by_base({"cat": [0.1]}, {"cat": [0.001, -0.001]})


# --- power -----------------------------------------------------------------------------------------
def test_minimum_detectable_effect_has_the_asked_power():
    mde = minimum_detectable_effect(12, 0.15, alpha=0.05, power=0.8)
    assert mde == pytest.approx(0.15 * TTestPower().solve_power(nobs=12, alpha=0.05, power=0.8), rel=1e-9)
    assert power_of(mde, 12, 0.15, 0.05) == pytest.approx(0.8, abs=1e-4)
    # Independent: the two-sided paired t-test's power from the noncentral t distribution.
    crit, nc = stats.t.ppf(0.975, 11), mde / 0.15 * math.sqrt(12)
    assert stats.nct.sf(crit, 11, nc) + stats.nct.cdf(-crit, 11, nc) == pytest.approx(0.8, abs=1e-4)
    assert can_detect(0.10, 12, 0.15).detectable is False and can_detect(0.20, 12, 0.15).detectable is True
    n = pairs_needed(0.10, 0.15)
    assert power_of(0.10, n, 0.15) >= 0.8 > power_of(0.10, n - 1, 0.15)
    with pytest.raises(ConfigError, match="at least 2 pairs"):
        minimum_detectable_effect(1, 0.1)


def test_sd_from_pilot_by_hand():
    base, arm = [10.0, 12.0, 8.0], [9.0, 10.0, 8.5]  # base mean 10: d = -0.1, -0.2, +0.05
    assert sd_from_pilot(base, arm) == pytest.approx(np.std([-0.1, -0.2, 0.05], ddof=1))
    two = sd_from_pilot({"a": base, "b": [1.0, 3.0]}, {"a": arm, "b": [2.0, 3.0]})  # b: d = 0.5, 0
    assert two == pytest.approx(np.std([-0.1, -0.2, 0.05, 0.5, 0.0], ddof=1))
    with pytest.raises(ConfigError, match="at least 2"):
        sd_from_pilot([1.0], [2.0])


# --- budget ------------------------------------------------------------------------------------------
def _best_by_formula(values, k, lower_is_better):
    v = sorted(values, reverse=not lower_is_better)
    n = len(v)
    return sum(v[i - 1] * ((n - i + 1) ** k - (n - i) ** k) / n ** k for i in range(1, n + 1))


@pytest.mark.parametrize("lower_is_better", [True, False])
def test_expected_best_matches_the_order_statistics(lower_is_better):
    values = [42.0, 55.0, 38.0, 70.0, 38.0, 61.0]
    curve = expected_best(values, lower_is_better=lower_is_better, reps=4000)
    assert [p.k for p in curve] == [1, 2, 3, 4, 5, 6]
    pick = min if lower_is_better else max
    for point in curve:
        formula = _best_by_formula(values, point.k, lower_is_better)
        assert point.exact == pytest.approx(formula)
        assert point.mean == pytest.approx(formula, abs=0.03 * np.ptp(values))
        assert point.low <= point.mean <= point.high
        if point.k <= 4:  # every ordered draw of k trials, counted
            draws = list(itertools.product(values, repeat=point.k))
            assert formula == pytest.approx(np.mean([pick(d) for d in draws]))
    assert [p.exact for p in curve] == sorted((p.exact for p in curve), reverse=lower_is_better)
    with pytest.raises(ConfigError, match="failed trials"):
        expected_best([1.0, float("nan")])


def test_share_within_the_best():
    assert share_within([10.0, 10.5, 11.0, 12.0, 20.0]) == pytest.approx(0.6)  # within 10 + 1
    assert share_within([-2.0, -1.9, -1.7, 0.0]) == pytest.approx(0.5)  # within -2 + 0.2
    assert share_within([40.0, 46.0, 50.0], lower_is_better=False) == pytest.approx(2 / 3)  # within 50 - 5
    with pytest.raises(ConfigError, match="too near zero"):
        share_within([0.0001, 0.01, 0.02])
    assert share_within([0.0001, 0.01, 0.02], scale=0.1) == pytest.approx(2 / 3)  # tolerance 0.01


# --- what the package may import ------------------------------------------------------------------------
def test_the_stats_package_imports_only_numeric_libraries():
    allowed = {"numpy", "scipy", "statsmodels", "harness"} | set(sys.stdlib_module_names)
    for path in (ROOT / "harness" / "stats").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
                if name.startswith("harness"):
                    assert name in ("harness.errors",) or name.startswith("harness.stats"), f"{path.name}: {name}"
