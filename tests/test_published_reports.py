"""Every verdict row of a published campaign report recomputes from its runs.csv with scipy and statsmodels.

A published report (``reports/<campaign>/``, committed) holds ``runs.csv``,
one row per run with every logged metric, and its verdict tables
(``confirmatory.csv``, ``exploratory.csv``, ``control.csv``). Here each row
with numbers is recomputed from ``runs.csv`` alone: per class, the arm's
paired difference from the base (by seed) as a fraction of the base's mean,
its t interval, t-test and TOST (statsmodels); pooled over classes, the
stratified t with classes as blocks (written out). The margin is the plan's
(``campaigns/<campaign>.toml``, default ±10%).
"""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
VERDICT_FILES = ("confirmatory.csv", "exploratory.csv", "control.csv")
ALPHA = 0.05  # every published plan's alpha
PUBLISHED = sorted(p.parent for p in ROOT.glob("reports/*/runs.csv") if (p.parent / "exploratory.csv").is_file())


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _margin(report: Path) -> float:
    plan = ROOT / "campaigns" / f"{report.name}.toml"
    hypotheses = tomllib.loads(plan.read_text()).get("hypotheses", {}) if plan.is_file() else {}
    return float(hypotheses.get("margin", 0.10))


def _differences(runs, dataset: str, arm: str, base: str, metric: str) -> np.ndarray:
    value = {(r["variant"], int(r["seed"])): float(r[f"metric.{metric}"])
             for r in runs if r["dataset"] == dataset and r["status"] == "FINISHED" and r[f"metric.{metric}"]}
    seeds = sorted(s for v, s in value if v == arm and (base, s) in value)
    reference = np.array([value[(base, s)] for s in seeds])
    return (np.array([value[(arm, s)] for s in seeds]) - reference) / reference.mean()


def test_a_published_campaign_report_is_there_to_check():
    assert [p.name for p in PUBLISHED] and "pilot" in [p.name for p in PUBLISHED]


@pytest.mark.parametrize("report", PUBLISHED, ids=[p.name for p in PUBLISHED])
def test_every_verdict_row_recomputes_from_runs_csv(report):
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.weightstats import DescrStatsW

    runs = _csv(report / "runs.csv")
    margin = _margin(report)
    rows = [row for name in VERDICT_FILES if (report / name).is_file() for row in _csv(report / name)]
    declared = _csv(report / "confirmatory.csv") if (report / "confirmatory.csv").is_file() else []
    datasets = sorted({r["dataset"] for r in runs})
    checked = 0
    for row in rows:
        assert row["verdict"] in ("better", "worse", "equivalent", "inconclusive")
        if not row["change"]:  # inconclusive without numbers: its reason says why
            assert row["verdict"] == "inconclusive" and row["reason"]
            continue
        per_class = {d: _differences(runs, d, row["arm"], row["base"], row["metric"]) for d in datasets}
        scope, _, side = row["scope"].partition(", one-sided: ")  # a declared one-sided comparison
        if scope in per_class:
            d = per_class[scope]
            assert int(row["n"]) == len(d)
            low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
            p = stats.ttest_1samp(d, 0).pvalue
            p_equivalence = DescrStatsW(d).ttost_mean(-margin, margin)[0]
            centre = d.mean()
        else:  # pooled: classes as blocks, Welch-Satterthwaite degrees of freedom
            assert scope == f"{len(datasets)} classes pooled"
            d = list(per_class.values())
            estimate = np.mean([x.mean() for x in d])
            terms = np.array([x.var(ddof=1) / len(x) / len(d) ** 2 for x in d])
            df = terms.sum() ** 2 / sum(t ** 2 / (len(x) - 1) for t, x in zip(terms, d))
            se = np.sqrt(terms.sum())
            low, high = estimate + se * stats.t.ppf([0.025, 0.975], df)
            p = 2 * stats.t.sf(abs(estimate) / se, df)
            p_equivalence = max(stats.t.sf((estimate + margin) / se, df), stats.t.cdf((estimate - margin) / se, df))
            centre = estimate
        if side:  # the two-sided p halved on the declared side, 1 - half on the other
            p = p / 2 if (centre < 0) == (side == "lower") else 1 - p / 2
        what = f"{report.name}: {row['arm']} {row['metric']} {row['scope']}"
        assert float(row["change"]) == pytest.approx(100 * centre, rel=1e-6, abs=1e-9), what
        assert float(row["ci_low"]) == pytest.approx(100 * low, rel=1e-6, abs=1e-9), what
        assert float(row["ci_high"]) == pytest.approx(100 * high, rel=1e-6, abs=1e-9), what
        assert float(row["p"]) == pytest.approx(p, rel=1e-6, abs=1e-12), what
        assert float(row["p_equivalence"]) == pytest.approx(p_equivalence, rel=1e-6, abs=1e-12), what
        # The verdict from the tests alone: the (Holm-adjusted, where declared) difference test first,
        # then TOST; lower is better for the distances (KID, FID), higher for the rest.
        decide = float(row["p_adjusted"]) if row["p_adjusted"] else float(row["p"])
        assert decide >= float(row["p"]) - 1e-12, what
        lower_is_better = row["metric"] in ("kid", "fid", "fid_infinity")
        expected = (("better" if (centre < 0) == lower_is_better else "worse") if decide < ALPHA
                    else "equivalent" if float(row["p_equivalence"]) < ALPHA else "inconclusive")
        assert row["verdict"] == expected, what
        checked += 1
    assert checked, f"{report.name}: no verdict row with numbers to recompute"
    # The declared family is Holm-adjusted together (every published plan has one alpha); a family
    # of one is left as it is, and its Holm p column stays empty rather than repeat p.
    tested = [row for row in declared if row["p"]]
    if len(tested) == 1:
        assert tested[0]["p_adjusted"] == "", f"{report.name}: a family of one shows no Holm p"
    elif tested:
        holm = multipletests([float(row["p"]) for row in tested], method="holm")[1]
        assert [float(row["p_adjusted"]) for row in tested] == pytest.approx(list(holm), rel=1e-6, abs=1e-12)
