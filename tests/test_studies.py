"""Studies without training: the space, storages, the objective's outcomes, the CLI's errors."""

from __future__ import annotations

import json
import math

import optuna
import pytest
from optuna.trial import TrialState

from harness import cli
from harness.config import RunConfig
from harness.errors import ConfigError, TrainingFailed
from harness.store import tracking
from harness.store.urls import redact
from harness.train.run import RunResult, StopRun
from studies import space as spaces
from studies import storage as storages
from studies.objective import Objective
from studies.optimize import load_or_create, pruner_for, sampler_for
from studies.settings import StudySettings, default_study_name

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- space ------------------------------------------------------------------------------
def test_param_specs_read_as_ranges_choices_and_fixed_values():
    assert spaces.parse_param("g_lr=1e-4:1e-3") == ("g_lr", spaces.Range(1e-4, 1e-3, log=True))
    assert spaces.parse_param("beta_1=0:0.9") == ("beta_1", spaces.Range(0.0, 0.9, log=False))
    assert spaces.parse_param("batch-size=32,64") == ("batch_size", spaces.Choice((32, 64)))
    assert spaces.parse_param("epochs=3") == ("epochs", 3)
    with pytest.raises(ConfigError, match="did you mean 'g_lr'"):
        spaces.parse_param("g_rl=1e-4:1e-3")
    with pytest.raises(ConfigError, match="must be in \\(0, 1\\)"):
        spaces.parse_param("d_lr=1e-4:2")
    with pytest.raises(ConfigError, match="one int value"):
        spaces.parse_param("epochs=2.5")
    with pytest.raises(ConfigError, match="whole number"):
        spaces.parse_param("epochs=0:3")


def test_default_space_centres_epochs_on_the_class_default():
    space = spaces.default_space("horses")  # published: 50 epochs
    assert space["epochs"] == spaces.Range(25, 75)
    assert space["g_lr"] == space["d_lr"] == spaces.Range(1e-5, 1e-2, log=True)
    assert "label_smoothing" in spaces.default_space("horses", label_smoothing=True)


def test_space_file_round_trips(tmp_path):
    space = {"g_lr": spaces.Range(1e-4, 1e-3, log=True), "batch_size": spaces.Choice((32, 64)), "epochs": 4}
    path = tmp_path / "space.json"
    path.write_text(json.dumps(spaces.to_json(space)))
    assert spaces.load_space_file(path) == space
    (tmp_path / "space.py").write_text("from studies.space import Range\nSPACE = {'d_lr': Range(1e-5, 1e-3, True)}\n")
    assert spaces.load_space_file(tmp_path / "space.py") == {"d_lr": spaces.Range(1e-5, 1e-3, True)}
    (tmp_path / "bad.json").write_text('{"g_lr": {"lo": 1}}')
    with pytest.raises(ConfigError, match="g_lr"):
        spaces.load_space_file(tmp_path / "bad.json")


def test_grid_covers_ranges_with_log_spaced_points():
    grid = spaces.grid({"g_lr": spaces.Range(1e-4, 1e-2, log=True), "epochs": spaces.Range(2, 4),
                        "batch_size": spaces.Choice((32, 64)), "beta_1": 0.5})
    assert grid["g_lr"] == pytest.approx([1e-4, 1e-3, 1e-2])
    assert grid["epochs"] == [2, 3, 4] and grid["batch_size"] == [32, 64] and "beta_1" not in grid


# --- storage and names -------------------------------------------------------------------
def test_storage_spellings():
    assert storages.normalise(None, 1) == "sqlite:///optuna.db"
    assert storages.normalise(None, 3) == "journal:optuna.journal"
    assert storages.normalise("runs/x.journal") == "journal:runs/x.journal"
    assert storages.normalise("postgresql://u@h/db", 4) == "postgresql+psycopg://u@h/db"
    with pytest.raises(ConfigError, match="SQLite, which several worker processes cannot write"):
        storages.normalise("sqlite:///o.db", 2)
    with pytest.raises(ConfigError, match="unknown kind"):
        storages.normalise("redis://h")
    assert redact("postgresql+psycopg://u:secret@h/db") == "postgresql+psycopg://u:***@h/db"
    assert redact("http://u:pw@mlflow:5000/x") == "http://u:***@mlflow:5000/x"
    assert redact("sqlite:///optuna.db") == "sqlite:///optuna.db"


def test_study_names_are_predictable():
    assert default_study_name("horses", "bn_kernel4") == "horses-bn_kernel4"
    assert default_study_name("cifar10:horses", "bn_kernel4") == "horses-bn_kernel4"
    assert default_study_name("animals10:horses", "bn") == "animals10-horses-bn"


def settings_for(variant: str = "bn", dataset: str = "horses", *, eval_every: int = 5, **study) -> StudySettings:
    return StudySettings(run=RunConfig(variant=variant, dataset=dataset, eval_every=eval_every), **study)


def test_settings_refuse_a_study_that_cannot_score():
    with pytest.raises(ConfigError, match="--eval-every=0"):
        settings_for(trials=2, eval_every=0)
    with pytest.raises(ConfigError, match="--trials 0"):
        settings_for(trials=0)


def test_a_loaded_study_must_search_the_same_thing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = settings_for(trials=2, study_name="s")
    load_or_create(settings, settings.search_space())
    other = settings_for("bn_kernel4", trials=2, study_name="s")
    with pytest.raises(ConfigError, match="has variant 'bn', not 'bn_kernel4'"):
        load_or_create(other, other.search_space())


def test_orphaned_running_trials_of_a_dead_local_worker_are_failed():
    study = optuna.create_study()
    trial = study.ask()
    study._storage.set_trial_user_attr(trial._trial_id, "worker", f"{storages.worker_id().split(':')[0]}:999999")
    alive = study.ask()
    study._storage.set_trial_user_attr(alive._trial_id, "worker", storages.worker_id())
    assert storages.fail_orphans(study) == [0]
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.RUNNING]
    assert "exited during the trial" in study.trials[0].user_attrs["fail_reason"]


# --- the objective's outcomes, with a stand-in trainer -----------------------------------
def fake_train(scores_by_lr):
    """A trainer whose scores per epoch are chosen by the trial's g_lr (NaN: it diverges).

    As real runs, every epoch's evaluation logs KID (here FID / 1000) and only
    the last one FID. It opens a real MLflow run (no training), as
    ``train.run`` does, so the objective links trials and runs exactly as in a
    real study."""
    def run(config, on_epoch=None, log=print):
        config = config.resolved()
        logger = tracking.RunLogger.start(config.tracking_uri, config.experiment, run_name=config.run_name,
                                          tags=config.tags)
        fids = scores_by_lr[config.g_lr]
        history = []
        for epoch, fid in enumerate(fids, 1):
            if math.isnan(fid):
                logger.end("FAILED")
                raise TrainingFailed(f"g_loss became nan at epoch {epoch}, step 1; try a lower learning rate.")
            metrics = {"g_loss": 1.0, "kid": fid / 1000, **({"fid": fid} if epoch == len(fids) else {})}
            history.append(metrics)
            try:
                on_epoch(epoch, metrics)
            except StopRun as stop:
                logger.end(stop.status)
                return RunResult(logger.run_id, stop.status, epoch, metrics, history, reason=stop.reason)
        logger.end("FINISHED")
        return RunResult(logger.run_id, "FINISHED", len(fids), metrics, history)
    return run


def test_objective_completes_prunes_and_fails_without_stopping_the_study(tracking_uri):
    scores = {1e-4: [50.0, 40.0], 2e-4: [60.0, 45.0], 3e-4: [500.0, 400.0], 4e-4: [30.0, float("nan")]}
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    for lr in scores:
        study.enqueue_trial({"g_lr": lr})
    base = RunConfig(variant="animals_baseline", dataset="horses", eval_every=1, tracking_uri=tracking_uri)
    objective = Objective(base, {"g_lr": spaces.Choice(tuple(scores)), "epochs": 2}, "fid",
                          study_name="s", train_fn=fake_train(scores), log=lambda *_: None)
    study.optimize(objective, n_trials=4, catch=(TrainingFailed,))
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    # Each trial names its MLflow run, and each run carries its trial's final state.
    runs = {r.run_id: r for r in tracking.find_runs(tracking_uri, "horses")}
    for trial, state in zip(study.trials, ("COMPLETE", "COMPLETE", "PRUNED", "FAIL")):
        assert runs[trial.user_attrs["mlflow_run_id"]].tags["optuna.trial_state"] == state
    # The pruner compares KID at each evaluation (FID comes only at the end); the value is the final FID.
    assert study.trials[0].value == 40.0
    assert study.trials[0].intermediate_values == pytest.approx({1: 0.05, 2: 0.04})
    assert "pruned at epoch 1: kid=0.5" in study.trials[2].user_attrs["pruned_reason"]
    assert "nan at epoch 2" in study.trials[3].user_attrs["fail_reason"]


def test_trial_config_maps_beta_1_to_both_networks():
    base = RunConfig(variant="animals_baseline", dataset="horses", eval_every=1)
    objective = Objective(base, {}, study_name="horses-x", parent_run_id="p")
    trial = optuna.create_study().ask()
    config = objective.config_for(trial, {"g_lr": 1e-3, "beta_1": 0.3, "epochs": 7, "batch_size": 64})
    assert config.overrides == {"g_lr": 1e-3, "g_beta_1": 0.3, "d_beta_1": 0.3}
    assert (config.d_lr, config.label_smoothing) == (None, None)  # the variant's own
    assert (config.epochs, config.batch_size) == (7, 64)
    assert config.tags["mlflow.parentRunId"] == "p" and config.tags["optuna.trial_number"] == "0"


# --- CLI ---------------------------------------------------------------------------------
def test_run_needs_a_variant_and_dataset_or_a_study(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--dataset", "horses"]) == 2
    assert "run needs --variant" in capsys.readouterr().err
    assert cli.main(["run", "--from-study", "nope"]) == 2
    assert "no study 'nope'" in capsys.readouterr().err


def test_grid_sampler_walks_the_grid_once_then_stops(tracking_uri):
    settings = StudySettings(run=RunConfig(variant="animals_baseline", dataset="horses", eval_every=5,
                                           tracking_uri=tracking_uri),
                             trials=10, sampler="grid",
                             space={"g_lr": {"low": 1e-4, "high": 1e-2, "log": True}, "epochs": 2,
                                    "batch_size": 32, "d_lr": 2e-4, "beta_1": 0.5})
    search = settings.search_space()
    study = optuna.create_study(sampler=sampler_for(settings, search, 0, 0), pruner=pruner_for(settings, search))
    scores = {lr: [1.0 / lr, 1.0 / lr] for lr in spaces.grid(search)["g_lr"]}
    objective = Objective(settings.base_config(), search, "fid", study_name="s",
                          train_fn=fake_train(scores), log=lambda *_: None)
    study.optimize(objective, n_trials=10)
    assert sorted(t.params["g_lr"] for t in study.trials) == pytest.approx(sorted(scores))
    assert study.best_params["g_lr"] == pytest.approx(1e-2)
