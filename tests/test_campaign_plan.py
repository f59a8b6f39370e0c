"""Campaign plans: what a plan denotes, and every mistake caught before anything trains."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.campaign.plan import load_plan
from harness.campaign.run import check_machine
from harness.errors import ConfigError

BASE = """
name = "p"
datasets = ["horses", "birds"]
seeds = [0, 1, 2]
"""


def plan_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(text)
    return path


def test_cells_are_datasets_by_variants_by_seeds_with_their_settings(tmp_path):
    plan = load_plan(plan_file(tmp_path, BASE + """
variants = ["animals_baseline", "bn_kernel4"]
[run]
epochs = 4
max_images = 256
g_lr = 1e-4
[dataset.birds]
epochs = 6
"""))
    assert len(plan.cells) == 2 * 2 * 3
    assert [c.key for c in plan.cells[:3]] == ["horses/animals_baseline/s0", "horses/animals_baseline/s1",
                                              "horses/animals_baseline/s2"]
    horses, birds = plan.cells[0].config, plan.cells[-1].config
    assert (horses.epochs, birds.epochs) == (4, 6)  # per-dataset settings win
    assert horses.g_lr == birds.g_lr == 1e-4 and horses.max_images == 256
    assert birds.tags["campaign"] == "p" and birds.tags["campaign.cell"] == "birds/bn_kernel4/s2"
    assert plan.cells[0].settings_md5 != plan.cells[1].settings_md5  # the seed is part of a cell


def test_one_at_a_time_is_the_base_and_each_single_change(tmp_path):
    plan = load_plan(plan_file(tmp_path, BASE + """
[grid]
base = "animals_baseline"
axes = "one-at-a-time"
tokens = ["bn", "kernel4", "inline", "mixed"]
"""))
    assert plan.variants == ("animals_baseline", "bn", "kernel4", "inline", "mixed")
    every = load_plan(plan_file(tmp_path, BASE + '[grid]\nbase = "animals_baseline"\naxes = "one-at-a-time"\n'))
    # batchnorm 3 other values, dropout 2, kernel, g_activation, leaky_relu, d_update 1 each
    assert len(every.variants) == 1 + 3 + 2 + 1 + 1 + 1 + 1


def test_a_factorial_takes_every_value_of_the_listed_axes_and_duplicates_are_kept_once(tmp_path):
    plan = load_plan(plan_file(tmp_path, BASE + """
variants = ["animals_baseline"]
[grid]
axes = ["batchnorm", "kernel"]
"""))
    assert len(plan.variants) == 4 * 2  # nobn_kernel3 is animals_baseline: kept once
    assert plan.variants[0] == "animals_baseline" and "nobn_kernel3" not in plan.variants
    assert any("same architecture" in note for note in plan.notes)


@pytest.mark.parametrize("extra, message", [
    ("variants = ['bn']\nepoch = 3\n", "unknown key 'epoch'"),
    ("variants = ['bn']\n[run]\nepoch = 3\n", "unknown setting 'epoch' (did you mean 'epochs'?)"),
    ("variants = ['bn_kernal4']\n", "unknown token 'kernal4'"),
    ("variants = ['bn']\n[run]\nepochs = 'ten'\n", "--epochs 'ten' must be a whole number"),
    ("variants = ['bn']\n[run]\nseed = 3\n", "'seed' is set per cell"),
    ("variants = ['bn']\n[run]\ntracking_uri = 'x'\n", "pass --tracking-uri"),
    ("variants = ['bn']\n[dataset.cows]\nepochs = 3\n", "[dataset.cows] names no dataset of the plan"),
    ("[grid]\naxes = ['batchnrom']\n", "unknown axis 'batchnrom' (did you mean 'batchnorm'?)"),
    ("[grid]\ntokens = ['nobn']\n", "token 'nobn' changes nothing"),
    ("", "no variants"),
    ("variants = ['bn']\nfrom_studies = true\n", "needs study 'horses-bn'"),
])
def test_every_mistake_names_its_key(tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)  # from_studies looks for ./optuna.db
    with pytest.raises(ConfigError) as error:
        load_plan(plan_file(tmp_path, BASE + extra))
    assert message in str(error.value)


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_plan(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_plan(plan_file(tmp_path, "name = \n"))
    # A name that could be a folder is checked against this machine before anything trains.
    plan = load_plan(plan_file(tmp_path, 'name = "p"\ndatasets = ["horsies"]\nseeds = [0]\nvariants = ["bn"]\n'))
    with pytest.raises(ConfigError, match="unknown dataset 'horsies'"):
        check_machine(plan)
    with pytest.raises(ConfigError, match="seeds must be a non-empty list of ints"):
        load_plan(plan_file(tmp_path, 'name = "p"\ndatasets = ["horses"]\nseeds = []\nvariants = ["bn"]\n'))


def test_status_names_a_cell_whose_worker_died_as_stopped_not_running(tmp_path):
    from harness.campaign.state import CellState
    from harness.campaign.status import cell_text
    cell = load_plan(plan_file(tmp_path, BASE + "variants = [\"bn\"]\n")).cells[0]
    dead = CellState(cell, "RUNNING")  # the MLflow run was never ended: its worker was killed
    assert cell_text(dead, {cell.key: "vm:12"}, set()) == "running vm:12"
    assert cell_text(dead, {}, {cell.key}) == "stopped, requeued"
    assert cell_text(dead, {}, set()) == "stopped (no worker)"
    # Without the campaign's queue (--status run away from it), nobody can tell: it says so.
    assert cell_text(dead, {}, set(), queue_read=False) == "running? (no queue)"


def test_status_counts_agree_with_the_grid_when_a_worker_died(tmp_path, monkeypatch):
    import harness.campaign.status as status
    from harness.campaign.state import CellState

    plan = load_plan(plan_file(tmp_path, BASE + "variants = [\"bn\"]\n"))
    held, dead, gone = (c.key for c in plan.cells[:3])

    class Queue:  # one live worker, one killed cell back in the queue, one worker whose pid is dead
        def holders(self):
            return {held: "vm:12", gone: "vm:13 (gone)"}

        def waiting(self):
            return {dead}

    monkeypatch.setattr(status, "cell_states", lambda plan: [CellState(c, "RUNNING" if i < 3 else "MISSING")
                                                             for i, c in enumerate(plan.cells)])
    monkeypatch.setattr(status.CellQueue, "existing", staticmethod(lambda name, url: Queue()))
    text = status.status_text(plan, "sqlite:///unused.db")
    assert "6 cells: 1 running, 2 stopped, 3 missing;" in text, text
    assert "stopped, requeued" in text and "stopped, worker vm:13 gone" in text


def test_status_without_the_campaigns_queue_says_why_running_cells_are_unknown(tmp_path, monkeypatch):
    import harness.campaign.status as status
    from harness.campaign.state import CellState

    plan = load_plan(plan_file(tmp_path, BASE + "variants = [\"bn\"]\n"))
    monkeypatch.setattr(status, "cell_states", lambda plan: [CellState(c, "RUNNING") for c in plan.cells])
    text = status.status_text(plan, f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert "running? (no queue)" in text and "stopped (no worker)" not in text
    assert "No queue of campaign" in text and "run --status where the campaign was started" in text
    assert not (tmp_path / "elsewhere.db").exists()  # reading the status creates nothing


def test_arms_of_a_plan_train_in_one_precision_under_auto(tmp_path, monkeypatch):
    import json

    from harness.train import precision

    results = tmp_path / "precision_equivalence.json"
    monkeypatch.setattr(precision, "EQUIVALENCE_FILE", results)
    results.write_text(json.dumps({"variants": {"animals_baseline": {"verdict": "equivalent"}}}))
    text = BASE + 'variants = ["animals_baseline", "bn"]\n'
    mixed = load_plan(plan_file(tmp_path, text))  # bn not shown equivalent: nobody takes bfloat16
    assert {c.config.precision for c in mixed.cells} == {"float32"}
    assert any("precision auto trains every arm in float32: bn" in note for note in mixed.notes)
    chosen = load_plan(plan_file(tmp_path, text + '[run]\nprecision = "bfloat16"\n'))  # asked for: kept
    assert {c.config.precision for c in chosen.cells} == {"bfloat16"}
    results.write_text(json.dumps({"variants": {"animals_baseline": {"verdict": "equivalent"},
                                                "bn": {"verdict": "equivalent"}}}))
    both = load_plan(plan_file(tmp_path, text))  # every arm shown equivalent: auto decides per machine
    assert {c.config.precision for c in both.cells} == {"auto"} and not any("precision" in n for n in both.notes)
