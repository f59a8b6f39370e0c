"""Every value of a published fidelity report recomputes from its own runs with scipy and statsmodels.

``reports/fidelity/<preset>/fidelity.json`` holds each (loop, seed)'s logged
values (``runs``) beside the comparison drawn from them. Here the comparison is
redone from ``runs`` alone, with formulas that do not go through
``harness.stats``: the paired t-test (scipy's ``ttest_rel``), the t interval of
the paired differences as a fraction of the notebook loop's mean, TOST within
±margin of that mean (statsmodels' ``ttost_paired``), Holm within each family
(statsmodels' ``multipletests``), and the verdict rule; then ``fidelity.md``'s
summary line is checked against the counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = sorted(p.parent for p in ROOT.glob("reports/fidelity/*/fidelity.json"))
LOWER_IS_BETTER = {"fid": True, "kid": True}  # the per-epoch values have no better side: "different"


def _values(report: dict, loop: str, pick) -> np.ndarray:
    runs = sorted(report["runs"][loop], key=lambda r: r["seed"])
    return np.array([pick(r) for r in runs], dtype=np.float64)


def _expected(harness: np.ndarray, notebook: np.ndarray, margin: float) -> dict:
    from statsmodels.stats.weightstats import ttost_paired

    scale = abs(notebook.mean())
    d = (harness - notebook) / scale
    low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    p_equivalence = ttost_paired(harness, notebook, -margin * scale, margin * scale)[0]
    return {"change": d.mean(), "ci_low": low, "ci_high": high,
            "p_difference": stats.ttest_rel(harness, notebook).pvalue, "p_equivalence": p_equivalence}


def _verdict(metric: str, change: float, p_holm: float, p_equivalence: float, alpha: float) -> str:
    if p_holm < alpha:
        if metric not in LOWER_IS_BETTER:
            return "different"
        return "better" if (change < 0) == LOWER_IS_BETTER[metric] else "worse"
    return "equivalent" if p_equivalence < alpha else "inconclusive"


def test_a_published_fidelity_report_is_there_to_check():
    assert "animals_baseline" in [p.name for p in PUBLISHED]


@pytest.mark.parametrize("folder", PUBLISHED, ids=[p.name for p in PUBLISHED])
def test_every_fidelity_value_recomputes_from_its_runs(folder):
    from statsmodels.stats.multitest import multipletests

    report = json.loads((folder / "fidelity.json").read_text())
    settings = report["settings"]
    margin, alpha = settings["margin"], settings["alpha"]
    assert [sorted(r["seed"] for r in report["runs"][loop]) for loop in ("harness", "notebook")] == \
        [list(range(settings["seeds"]))] * 2
    families = {
        "per_epoch": [(metric, row, lambda r, m=metric, e=row["epoch"]: r["epochs"][e - 1][m])
                      for metric, rows in report["per_epoch"].items() for row in rows],
        "final": [(metric, row, lambda r, m=metric: r["final"][m]) for metric, row in report["final"].items()],
    }
    verdicts = []
    for name, family in families.items():
        assert len(family) == report["summary"]["families"][name]
        expected = [_expected(_values(report, "harness", pick), _values(report, "notebook", pick), margin)
                    for _, _, pick in family]
        holm = multipletests([e["p_difference"] for e in expected], method="holm")[1]
        for (metric, row, _), e, p_holm in zip(family, expected, holm):
            label = f"{metric} {'epoch ' + str(row['epoch']) if 'epoch' in row else 'final'}"
            for key, value in e.items():
                assert row[key] == pytest.approx(value, rel=1e-6, abs=1e-9), f"{label}: {key}"
            assert row["p_adjusted"] == pytest.approx(p_holm, rel=1e-6), label
            assert row["verdict"] == _verdict(metric, e["change"], p_holm, e["p_equivalence"], alpha), label
            verdicts.append(row["verdict"])
    summary = report["summary"]
    assert (summary["equivalent"], summary["inconclusive"]) == \
        (verdicts.count("equivalent"), verdicts.count("inconclusive"))
    assert len(summary["apart"]) == len(verdicts) - summary["equivalent"] - summary["inconclusive"]
    assert f"**{summary['equivalent']} of {summary['cells']} values equivalent**" in \
        (folder / "fidelity.md").read_text()
