"""Tuned campaigns ([tuning]): the table refused when it is wrong, before anything trains; the
trials' draws; and the tiny example plan searched, confirmed on fresh seeds and resumed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from workers import second_finishes_after_first_is_killed

from harness import cli
from harness.campaign.plan import load_plan
from harness.campaign.search import SEARCH_TAG, WINNER_TAG, search_plan
from harness.errors import ConfigError
from harness.store import tracking
from reports.build import build_report

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "campaigns" / "tuned-example.toml"

PLAN = """
name = "t1"
datasets = ["horses"]
seeds = [0, 1]
variants = ["animals_baseline", "bn"]
[run]
epochs = 1
max_images = 64
batch_size = 32
width = 0.125
eval_every = 1
[tuning]
trials = 3
seeds = [100]
metric = "kid"
"""


def plan_with(tmp_path: Path, text: str):
    path = tmp_path / "plan.toml"
    path.write_text(text)
    return load_plan(path)


@pytest.mark.parametrize("change, key, words", [
    (("trials = 3", "trials = {animals_baseline = 3, bn = 4}"), "[tuning]", "trials differ between arms"),
    (("trials = 3", "trials = {animals_baseline = 3}"), "[tuning]", "no count for 'bn'"),
    (("seeds = [100]", "seeds = [100, 1]"), "[tuning]", "seeds [1] are also the plan's seeds"),
    (("metric = \"kid\"", "metric = \"is\""), "[tuning]", "metric = 'is' is not a metric a run logs"),
    (("eval_every = 1", "eval_every = 0"), "[tuning]", "never logged with eval_every = 0"),
    (("eval_every = 1", "eval_every = 1\neval_reference = \"train\""), "[tuning]", "held-out images"),
    (("metric = \"kid\"", "metric = \"kid\"\n[tuning.space]"), "[tuning.space]", "the search space is empty"),
    (("metric = \"kid\"", "metric = \"kid\"\n[tuning.space]\ng_lr = {low = 1e-3, high = 1e-3, log = true}"),
     "[tuning.space]", "g_lr has low 0.001 >= high 0.001"),
    (("metric = \"kid\"", "metric = \"kid\"\n[tuning.space]\nepochs = {low = 1, high = 3}"),
     "[tuning.space]", "'epochs' cannot be searched here"),
    (("metric = \"kid\"", "metric = \"kid\"\n[tuning.space]\ng_lr = 1e-4"), "[tuning.space]", "nothing is searched"),
    (("metric = \"kid\"", "metric = \"kid\"\ntrails = 3"), "[tuning]", "did you mean 'trials'"),
    (("name = \"t1\"", "name = \"t1\"\nfrom_studies = true"), "[tuning]", "drop from_studies"),
])
def test_a_bad_tuning_table_is_refused_naming_its_key(tmp_path, change, key, words):
    old, new = change
    assert old in PLAN
    with pytest.raises(ConfigError) as err:
        plan_with(tmp_path, PLAN.replace(old, new, 1))
    assert key in str(err.value) and words in str(err.value), str(err.value)


def test_every_arm_gets_the_same_draws_on_the_tuning_seeds_and_the_cells_stay_the_confirmation_seeds(tmp_path):
    plan = plan_with(tmp_path, PLAN.replace("trials = 3", "trials = {animals_baseline = 3, bn = 3}")
                     .replace("seeds = [100]", "seeds = [100, 101]"))
    search = search_plan(plan)
    assert [c.key for c in search.cells] == [f"horses/{v}/t00{i}" for v in ("animals_baseline", "bn") for i in range(3)]
    assert [c.config.seed for c in search.cells[:3]] == [100, 101, 100]
    base, bn = search.cells[:3], search.cells[3:]
    assert [c.params for c in base] == [c.params for c in bn]  # paired: the same points for each arm
    assert len({c.config.g_lr for c in base}) == 3
    for cell in search.cells:
        assert 1e-5 <= cell.config.g_lr <= 1e-2 and 0 <= cell.config.g_beta_1 <= 0.9
        assert cell.config.g_beta_1 == cell.config.d_beta_1  # one beta_1 for both networks
        assert cell.config.tags["campaign"] == "t1:search" and cell.config.tags[SEARCH_TAG] == "t1"
    assert {c.seed for c in plan.cells} == {0, 1}
    assert search_plan(plan).cells == search.cells  # a rerun draws the same trials


def test_before_anything_ran_the_dry_run_gives_each_arms_budget_and_the_status_both_halves(
        tracking_uri, tmp_path, cifar10_root, capsys):
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.replace("seeds = [100]", "seeds = [100]\nepochs = 2"))
    args = ["campaign", str(path), "--tracking-uri", tracking_uri, "--checkpoint-dir", str(tmp_path / "ck")]
    assert cli.main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    # 64 images in batches of 32, 2 epochs per trial: 4 generator steps a trial, 3 trials an arm.
    assert "arm horses/animals_baseline: 3 trials x 4 G steps (2 epochs, batch 32) = 12 G steps; 3 trials to run" in out
    assert "arm horses/bn: 3 trials x 4 G steps" in out
    assert "confirmation: 4 runs (1 dataset(s) x 2 arms x seeds 0, 1), 1 epochs each" in out
    assert "horses/bn/s1" in out and "estimated machine time: at least" in out and "GFLOP/s" in out
    assert cli.main([*args, "--status"]) == 0
    out = capsys.readouterr().out
    assert "search: 6 trials: 6 missing" in out and "0/3 done" in out
    assert "confirmation: waits for the searches (arm horses/animals_baseline: 3 of 3 trials not finished" in out
    assert not tracking.find_runs(tracking_uri, "horses")  # nothing trained


def _tiny_example(tmp_path: Path, name: str, trials: int = 2) -> Path:
    """campaigns/tuned-example.toml shrunk further: fewer images, a narrower network, fewer trials."""
    text = EXAMPLE.read_text()
    for old, new in (('name = "tuned-example"', f'name = "{name}"'), ("max_images = 256", "max_images = 64"),
                     ("width = 0.25", "width = 0.125"), ("trials = 4", f"trials = {trials}"),
                     ("epochs = 2", "epochs = 1"), ("eval_samples = 200", "eval_samples = 32")):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "plan.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_the_tuned_example_searches_every_arm_alike_then_confirms_on_fresh_seeds(tracking_uri, tmp_path, cifar10_root,
                                                                                 tiny_backbone, capsys):
    path = _tiny_example(tmp_path, "tx")
    args = ["campaign", str(path), "--tracking-uri", tracking_uri, "--checkpoint-dir", str(tmp_path / "ck")]
    assert cli.main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "arm horses/bn: 2 trials x 2 G steps" in out and "confirmation: 4 runs" in out
    assert "estimated machine time: at least" in out  # nothing has run: the FLOP estimate

    assert cli.main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "arm horses/bn: trial horses/bn/t00" in out and "won (kid" in out

    trials = tracking.find_runs(tracking_uri, "horses", tags={"campaign": "tx:search"})
    cells = tracking.find_runs(tracking_uri, "horses", tags={"campaign": "tx"})
    assert sorted(r.tags["campaign.cell"] for r in trials) == [
        f"horses/{v}/t00{i}" for v in ("animals_baseline", "bn") for i in range(2)]  # equal, each once
    assert {r.params["seed"] for r in trials} == {"100"}
    assert sorted(r.tags["campaign.cell"] for r in cells) == [
        f"horses/{v}/s{s}" for v in ("animals_baseline", "bn") for s in (0, 1)]
    assert {r.status for r in trials + cells} == {"FINISHED"}
    for run in cells:  # each confirmation cell trains its arm's winner, on a seed no trial used
        won = next(t for t in trials if t.tags["campaign.cell"] == run.tags[WINNER_TAG])
        assert won.tags["campaign.cell"].startswith(f"horses/{run.tags['campaign.cell'].split('/')[1]}/")
        assert run.params["g_lr"] == won.params["g_lr"]

    # Again: nothing left, nothing trained; the status shows both halves.
    assert cli.main(args) == 0
    assert len(tracking.find_runs(tracking_uri, "horses", tags={"campaign": "tx:search"})) == 4
    assert len(tracking.find_runs(tracking_uri, "horses", tags={"campaign": "tx"})) == 4
    capsys.readouterr()
    assert cli.main([*args, "--status"]) == 0
    out = capsys.readouterr().out
    assert "search: 4 trials: 4 finished" in out and "2/2 done; best so far t00" in out
    assert "4 cells: 4 finished; all finished" in out

    # The report: each arm's winner and budget curve; its comparisons hold the confirmation cells only.
    report = build_report(tracking_uri, tmp_path / "report", campaign="tx", formats=("md",))
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Tuning: equal-budget search per arm" in text and "Expected best kid after k trials" in text
    assert (tmp_path / "report" / "plots" / "tuning_budget.png").is_file()
    budget = next(t for t in report.tables if t.name == "tuning_budget")
    assert sorted((r["arm"], r["k"]) for r in budget.rows) == [
        (f"horses/{v}", k) for v in ("animals_baseline", "bn") for k in (1, 2)]
    won = next(t for t in report.tables if t.name == "tuning_winners")
    assert [(r["trials"], r["confirmed"]) for r in won.rows] == [(2, 2), (2, 2)] and all("g_lr" in r for r in won.rows)
    assert report.included == 4  # the compared runs: the confirmation cells, no trial


@pytest.mark.slow
def test_two_workers_on_postgres_finish_a_killed_workers_trial_with_no_trial_or_cell_twice(
        postgres_url, tmp_path, cifar10_root, tiny_backbone):
    name = f"pg{uuid.uuid4().hex[:6]}"
    path = _tiny_example(tmp_path, name)
    text = path.read_text()
    assert "epochs = 1                            # each trial's length" in text
    path.write_text(text.replace("epochs = 1                            # each trial's length", "epochs = 2"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # Kill the first worker mid-trial, once the trial has checkpointed its first epoch.
    second_finishes_after_first_is_killed(path, uri, postgres_url, tmp_path, "epoch 1/2", 400, 900)

    def live(campaign: str) -> list:
        return [r for r in tracking.find_runs(uri, "horses", tags={"campaign": campaign})
                if "campaign.superseded" not in r.tags]

    trials, cells = live(f"{name}:search"), live(name)
    assert sorted(r.tags["campaign.cell"] for r in trials) == sorted(c.key for c in search_plan(load_plan(path)).cells)
    assert sorted(r.tags["campaign.cell"] for r in cells) == sorted(c.key for c in load_plan(path).cells)
    assert {r.status for r in trials + cells} == {"FINISHED"}  # nothing left RUNNING, none twice
    histories = tracking.metric_histories(uri, [r.run_id for r in trials], ("d_loss",))
    for run in trials:
        assert [m.step for m in histories[run.run_id]["d_loss"]] == [1, 2]  # no epoch logged twice, none lost
    assert "resuming run" in (tmp_path / "second.log").read_text()  # the killed trial went on from its checkpoint
