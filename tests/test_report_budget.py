"""A tuned campaign's report section from logged trials: winners, budget curves, share within 10%."""

from __future__ import annotations

import math

import pytest

from harness.stats import expected_best
from reports import budget, collect
from reports.collect import RunRecord


def trial(arm: str, number: int, kid: float | None, status: str = "FINISHED", g_lr: float = 1e-4) -> RunRecord:
    dataset, variant = arm.split("/")
    return RunRecord(run_id=f"{variant}{number}", run_name="", experiment="horses", status=status, start_time=0,
                     dataset=dataset, variant=variant, seed=100, axes={}, setting=(), eval_key=None,
                     metrics={} if kid is None else {"kid": kid}, params={"g_lr": str(g_lr), "d_lr": "0.001"},
                     tags={"campaign": "t:search", "campaign.cell": f"{arm}/t{number:03d}",
                           "campaign.trial": str(number), "campaign.tuning_metric": "kid"})


def test_each_arm_has_its_winner_its_budget_curve_and_its_failed_trials_left_out(tmp_path, monkeypatch):
    runs = [trial("horses/a", 0, 0.30, g_lr=1e-3), trial("horses/a", 1, 0.10, g_lr=2e-4), trial("horses/a", 2, 0.20),
            trial("horses/b", 0, 0.12), trial("horses/b", 1, 0.11), trial("horses/b", 2, None, status="FAILED")]
    monkeypatch.setattr(collect, "experiments", lambda uri, names=None: {"1": "horses"})
    monkeypatch.setattr(collect, "collect_runs", lambda uri, ids, tags=None: runs if tags == {"campaign": "t:search"} else [])
    confirmed = [RunRecord(run_id=f"c{s}", run_name="", experiment="horses", status="FINISHED", start_time=0,
                           dataset="horses", variant="a", seed=s, axes={}, setting=(), eval_key=None, metrics={},
                           tags={"campaign.tuned_from": "horses/a/t001"}) for s in (0, 1)]
    section = budget.tuning_section("sqlite:///x.db", "t", confirmed, tmp_path)
    winners, curves = section.tables
    a, b = winners.rows
    shown = [c.key for c in winners.columns]
    assert "g_lr" in shown and "d_lr" not in shown  # the settings searched: those that differ between trials
    assert (a["winner"], a["value"], a["g_lr"], a["confirmed"]) == ("t001", 0.10, 2e-4, 2)
    assert (b["trials"], b["finished"], b["failed"], b["winner"], b["confirmed"]) == (3, 2, 1, "t001", 0)
    assert a["share"] == pytest.approx(1 / 3) and b["share"] == 1.0  # 0.11 and 0.12 are within 10% of 0.11
    rows_a = [r for r in curves.rows if r["arm"] == "horses/a"]
    assert [r["k"] for r in rows_a] == [1, 2, 3]
    assert [r["exact"] for r in rows_a] == pytest.approx([p.exact for p in expected_best([0.3, 0.1, 0.2], 3)])
    assert rows_a[0]["exact"] == pytest.approx(0.2) and all(r["low"] <= r["mean"] <= r["high"] for r in rows_a)
    assert [r["k"] for r in curves.rows if r["arm"] == "horses/b"] == [1, 2, 3]  # the budget: 3 trials, 1 failed
    assert (tmp_path / "tuning_budget.png").is_file() and "3 trials each" in section.text
    assert not math.isnan(rows_a[-1]["mean"])


def test_a_campaign_without_trials_has_no_tuning_section(tmp_path, monkeypatch):
    monkeypatch.setattr(collect, "experiments", lambda uri, names=None: {"1": "horses"})
    monkeypatch.setattr(collect, "collect_runs", lambda uri, ids, tags=None: [])
    assert budget.tuning_section("sqlite:///x.db", "t", [], tmp_path) is None
