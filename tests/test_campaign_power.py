"""campaign --dry-run's power lines: the spread from an earlier campaign in the store, else the declared guess."""

from __future__ import annotations

import numpy as np
from statsmodels.stats.power import TTestPower

from harness.campaign.plan import load_plan
from harness.campaign.power import plan_power
from harness.store import tracking

PLAN = """
name = "{name}"
datasets = ["horses"]
seeds = [0, 1, 2, 3]
[grid]
base = "animals_baseline"
tokens = ["bn"]
[hypotheses]
primary = [{{arm = "bn", metric = "kid"}}]
sd_guess = 0.02
"""


def test_the_spread_of_an_earlier_campaigns_control_sizes_the_plan(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(name="now"))
    plan = load_plan(path, tracking_uri=uri)
    guessed = plan_power(plan)  # no store yet: the declared guess
    mde = TTestPower().solve_power(nobs=4, alpha=0.05, power=0.8) * 0.02
    assert f"±{100 * mde:.1f}% of the base's value pooled over 1 class(es) (4 pairs" in guessed[0]
    assert "declared sd_guess" in guessed[0] and len(guessed) == 1  # 0.02 detects the 10% margin

    (tmp_path / "old.toml").write_text(PLAN.format(name="old"))
    old = load_plan(tmp_path / "old.toml", tracking_uri=uri)
    tracking.ensure_store(uri)
    values = {"animals_baseline": [1.0, 1.2, 0.9, 1.1], "inline": [1.1, 1.0, 1.0, 1.3], "bn": [0.5] * 4}
    for cell in old.cells:
        config = cell.config.resolved()
        logger = tracking.RunLogger.create(uri, config.experiment, tags={**config.tags, "variant": cell.variant})
        logger.log_params({"seed": cell.seed, "data_name": cell.dataset, "variant": cell.variant})
        logger.log_metrics({"kid": values[cell.variant][cell.seed]}, step=1)
        logger.end("FINISHED")
    base, control = np.array(values["animals_baseline"]), np.array(values["inline"])
    sd = float(np.std((control - base) / base.mean(), ddof=1))
    lines = plan_power(plan)
    assert f"seed-to-seed sd of {100 * sd:.1f}% (campaign 'old' in the store, its control inline" in lines[0]
    assert "cannot detect its own margin" in lines[1]  # 4 pairs at that spread miss ±10%
