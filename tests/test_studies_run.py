"""Real tiny studies: 4 trials with pruning resumed to 6, and two workers on one PostgreSQL
study; in both, Optuna and MLflow agree trial by trial."""

from __future__ import annotations

import uuid

import optuna
import pytest
from optuna.trial import TrialState

from harness import cli
from harness.config import RunConfig
from harness.store import tracking
from studies import storage as storages
from studies.runner import run_study
from studies.settings import StudySettings

pytestmark = pytest.mark.slow

TINY_RUN = dict(variant="animals_baseline", dataset="horses", max_images=64, width=0.125, eval_every=1,
                eval_samples=64, backbone="cifar10_classifier", xla="off", seed=3)
TINY_SPACE = {"epochs": 2, "batch_size": 32}


def tiny(tracking_uri: str, **study) -> StudySettings:
    return StudySettings(run=RunConfig(tracking_uri=tracking_uri, **TINY_RUN), space=TINY_SPACE, **study)
STATE_TAG = {TrialState.COMPLETE: "COMPLETE", TrialState.PRUNED: "PRUNED", TrialState.FAIL: "FAIL"}
RUN_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}


def check_agreement(study: optuna.Study, uri: str, parent_run_id: str) -> None:
    """Every trial finished, has exactly one child run, and both sides say the same."""
    client = tracking.client(uri)
    children = tracking.find_runs(uri, "horses", tags={"mlflow.parentRunId": parent_run_id})
    by_number = {int(r.tags["optuna.trial_number"]): r for r in children}
    assert len(by_number) == len(children) == len(study.trials)
    for trial in study.trials:
        run = by_number[trial.number]
        assert trial.user_attrs["mlflow_run_id"] == run.run_id
        assert run.tags["optuna.trial_state"] == STATE_TAG[trial.state]
        assert run.status == RUN_STATUS[trial.state]
        assert float(run.params["g_lr"]) == pytest.approx(trial.params["g_lr"])
        assert float(run.params["d_beta_1"]) == pytest.approx(trial.params["beta_1"])
        kid = {m.step: m.value for m in client.get_metric_history(run.run_id, "kid")}
        assert kid == pytest.approx(trial.intermediate_values)  # the pruner's: KID at every evaluation
        if trial.state == TrialState.COMPLETE:
            fid = {m.step: m.value for m in client.get_metric_history(run.run_id, "fid")}
            assert trial.value == pytest.approx(fid[2])


def test_study_prunes_resumes_and_matches_mlflow(tracking_uri, cifar10_root, tiny_backbone, tmp_path):
    first = run_study(tiny(tracking_uri, trials=4), log=lambda *_: None)
    assert first["study"] == "horses-animals_baseline" and first["trials"] == 4

    again = run_study(tiny(tracking_uri, trials=6), log=lambda *_: None)
    assert again["parent_run_id"] == first["parent_run_id"]  # resumed, not restarted

    study = optuna.load_study(study_name="horses-animals_baseline", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.number for t in study.trials] == list(range(6))
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert study.user_attrs["pruner"] == "median"
    assert all(t.intermediate_values for t in study.trials)  # each reported KID per epoch, for the pruner
    assert study.user_attrs["eval_backbone"].startswith("cifar10_classifier")
    assert "offline" in study.user_attrs["metric_note"]
    check_agreement(study, tracking_uri, first["parent_run_id"])

    parent = tracking.client(tracking_uri).get_run(first["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["best_trial"] == str(study.best_trial.number)
    assert parent.data.metrics["best_fid"] == pytest.approx(study.best_value)
    artifacts = {a.path for a in tracking.client(tracking_uri).list_artifacts(parent.info.run_id, "optuna")}
    assert {"optuna/optimization_history.png", "optuna/summary.json"} <= artifacts

    # `run --from-study` trains the best trial's settings.
    code = cli.main(["run", "--from-study", "horses-animals_baseline", "--tracking-uri", tracking_uri,
                     "--epochs", "1", "--no-progress", "--xla", "off", "--checkpoint-dir", str(tmp_path / "ck")])
    assert code == 0
    best_runs = tracking.find_runs(tracking_uri, "horses", tags={"optuna.best_trial": str(study.best_trial.number)})
    assert len(best_runs) == 1
    assert float(best_runs[0].params["g_lr"]) == pytest.approx(study.best_params["g_lr"])
    assert best_runs[0].params["batch_size"] == "32"


def test_two_workers_share_one_postgres_study(postgres_url, tracking_uri, data_root, tiny_backbone):
    url = postgres_url
    name = f"pg-{uuid.uuid4().hex[:8]}"
    summary = run_study(tiny(tracking_uri, trials=3, workers=2, storage=url, study_name=name),
                        log=lambda *_: None)
    assert summary["trials"] == 3 and summary["failed_workers"] == 0

    study = optuna.load_study(study_name=name, storage=storages.normalise(url))
    assert sorted(t.number for t in study.trials) == [0, 1, 2]  # none lost, none duplicated
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # both workers ran trials
    check_agreement(study, tracking_uri, summary["parent_run_id"])


def test_the_study_command_runs_a_study_from_its_flags(tracking_uri, cifar10_root, tiny_backbone, tmp_path, capsys):
    code = cli.main(["study", "--variant", "animals_baseline", "--dataset", "horses", "--trials", "1",
                     "--max-images", "64", "--width", "0.125", "--eval-every", "1", "--eval-samples", "64",
                     "--backbone", "cifar10_classifier", "--xla", "off", "--param", "epochs=1",
                     "--param", "batch_size=32", "--tracking-uri", tracking_uri,
                     "--checkpoint-dir", str(tmp_path / "ck")])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "study horses-animals_baseline: 1 trials (1 complete)" in out
    assert "run --from-study horses-animals_baseline" in out
