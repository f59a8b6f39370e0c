"""Verdicts of a campaign from declared hypotheses: Holm within the family, one-sided tests, the control's
flag, power from the control's spread; checked against SciPy and statsmodels on runs written by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from harness.stats.design import Hypotheses, Primary
from reports.collect import RunRecord
from reports.verdicts import assess, sections

DATASETS, SEEDS = ["horses", "birds"], [0, 1, 2, 3]
SCALE = {"horses": 0.1, "birds": 0.3}


def run(dataset: str, variant: str, seed: int, kid: float) -> RunRecord:
    return RunRecord(run_id=f"{dataset}-{variant}-{seed}", run_name="", experiment="e", status="FINISHED",
                     start_time=0, dataset=dataset, variant=variant, seed=seed, axes={}, setting=(),
                     eval_key=None, metrics={"kid": kid})


def runs(effects: dict[str, float], noise: float = 0.03, drop: tuple = ()) -> list[RunRecord]:
    rng = np.random.default_rng(7)
    out = []
    for d in DATASETS:
        for s in SEEDS:
            seed_effect = rng.normal(0, 0.05)  # shared by every arm of a seed: pairing matters
            for v, e in effects.items():
                if (d, v, s) not in drop:
                    out.append(run(d, v, s, SCALE[d] * (1 + e + seed_effect + rng.normal(0, noise))))
    return out


def d_of(records, arm):
    value = {(r.dataset, r.variant, r.seed): r.metrics["kid"] for r in records}
    out = []
    for d in DATASETS:
        base = np.array([value[(d, "base", s)] for s in SEEDS])
        out.append((np.array([value[(d, arm, s)] for s in SEEDS]) - base) / base.mean())
    return np.concatenate(out)


def stratified_p(records, arm, alternative="two-sided"):
    """The pooled test written out: classes as blocks, Welch-Satterthwaite over per-class variances."""
    d = d_of(records, arm).reshape(len(DATASETS), len(SEEDS))
    terms = d.var(axis=1, ddof=1) / len(SEEDS) / len(DATASETS) ** 2
    t = d.mean() / np.sqrt(terms.sum())
    df = terms.sum() ** 2 / (terms ** 2 / (len(SEEDS) - 1)).sum()
    return {"two-sided": 2 * stats.t.sf(abs(t), df), "less": stats.t.cdf(t, df),
            "greater": stats.t.sf(t, df)}[alternative]


ARMS = ["base", "bn", "k4", "ctl"]
H = Hypotheses(base="base", primary=(Primary("bn", "kid"), Primary("k4", "kid")), control="ctl", margin=0.1)


def test_the_declared_family_is_holm_adjusted_and_the_rest_is_exploratory():
    records = runs({"base": 0, "bn": -0.25, "k4": 0.02, "ctl": 0})
    v = assess(records, H, ARMS, DATASETS, SEEDS)
    assert [(c.arm, c.scope) for c in v.confirmatory] == [("bn", "2 classes pooled"), ("k4", "2 classes pooled")]
    raw = [stratified_p(records, a) for a in ("bn", "k4")]
    assert [c.p_adjusted for c in v.confirmatory] == pytest.approx(list(multipletests(raw, method="holm")[1]))
    assert v.confirmatory[0].verdict == "better" and v.confirmatory[0].family_size == 2
    assert all(c.family_size == 1 for c in v.exploratory + v.control)  # exploratory: unadjusted
    assert {c.arm for c in v.exploratory} == {"bn", "k4"} and all(c.scope in DATASETS for c in v.exploratory)
    assert {c.arm for c in v.control} == {"ctl"} and not v.flag
    text = " ".join(b for s in sections(v) for b in s.bullets)
    assert "bn vs base, kid (2 classes pooled): better" in text and "Holm-adjusted p (2 comparisons)" in text


def test_a_control_judged_different_is_flagged_at_the_top():
    v = assess(runs({"base": 0, "bn": 0, "k4": 0, "ctl": 0.3}, noise=0.01), H, ARMS, DATASETS, SEEDS)
    (pooled,) = [c for c in v.control if "pooled" in c.scope]
    assert pooled.verdict == "worse" and "seed noise is larger than its tests assume" in v.flag


def test_a_one_sided_hypothesis_halves_the_p_on_its_side_only():
    records = runs({"base": 0, "bn": -0.05, "k4": 0, "ctl": 0})
    lower = Hypotheses(base="base", primary=(Primary("bn", "kid", "lower"),), control="ctl")
    higher = Hypotheses(base="base", primary=(Primary("bn", "kid", "higher"),), control="ctl")
    (c_low,) = assess(records, lower, ARMS, DATASETS, SEEDS).confirmatory
    (c_high,) = assess(records, higher, ARMS, DATASETS, SEEDS).confirmatory
    assert c_low.p_adjusted == pytest.approx(stratified_p(records, "bn", "less"))
    assert c_high.p_adjusted == pytest.approx(stratified_p(records, "bn", "greater"))


def test_a_failed_cell_or_one_seed_makes_the_comparison_inconclusive():
    records = runs({"base": 0, "bn": -0.3, "k4": 0, "ctl": 0}, drop=(("birds", "bn", 2),))
    v = assess(records, H, ARMS, DATASETS, SEEDS)
    bn = v.confirmatory[0]
    assert bn.verdict == "inconclusive" and bn.mean_change is None and "1 of 8 pairs missing" in bn.reason
    assert "birds seed 2" in bn.reason
    one = assess(runs({"base": 0, "bn": -0.3, "k4": 0, "ctl": 0}), H, ARMS, DATASETS, [0])
    assert all(c.verdict == "inconclusive" and c.mean_change is None for c in one.confirmatory)


def test_power_uses_the_controls_spread_and_warns_when_the_margin_is_out_of_reach():
    records = runs({"base": 0, "bn": 0, "k4": 0, "ctl": 0}, noise=0.2)
    v = assess(records, H, ARMS, DATASETS, SEEDS)
    sd = d_of(records, "ctl").std(ddof=1)
    mde = TTestPower().solve_power(nobs=8, alpha=0.05 / 2, power=0.8) * sd
    assert f"±{100 * mde:.1f}% of the base's value pooled over 2 class(es) (8 pairs" in v.power[0]
    assert "control against its base" in v.power[0]
    assert mde > 0.1 and "cannot detect its own margin" in v.power[1]
    guessed = assess(records, Hypotheses(base="base", sd_guess=0.01), ["base", "bn"], DATASETS, SEEDS)
    assert "sd_guess" in guessed.power[0] and len(guessed.power) == 1
