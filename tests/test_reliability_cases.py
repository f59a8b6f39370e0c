"""Each case of the third reliability round as a row: a run that fails while its tracking
starts, a plan edited while a campaign runs, read-only commands that must not write."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.config import RunConfig


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite store with MLflow's schema, created once (migrations take seconds)."""
    from harness.store import tracking

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    tracking.ensure_store(f"sqlite:///{path}")
    return path


@pytest.fixture
def store_uri(empty_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _runs(uri: str) -> list:
    from harness.store import tracking

    client = tracking.client(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


# --- case 1: a run that fails while its tracking starts ------------------------------------
@pytest.mark.parametrize("error,status", [
    (PermissionError(13, "Permission denied", "mlruns/1"), "FAILED"),  # chmod 555 mlruns/<experiment>
    (KeyboardInterrupt(), "KILLED"),  # Ctrl-C (or SIGTERM) at that moment
])
def test_a_run_failing_while_its_tracking_starts_is_ended_not_left_for_mlflow_to_finish(
        store_uri, tmp_path, monkeypatch, data_root, error, status):
    import mlflow

    from harness.store import tracking
    from harness.train import run as train

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(tracking.RunLogger, "log_dataset", fail)
    config = RunConfig(variant="animals_baseline", dataset="horses", epochs=1, batch_size=32, max_images=64,
                       width=0.125, tracking_uri=store_uri, progress=False, xla="off",
                       checkpoint_dir=str(tmp_path / "ck"))
    with pytest.raises(type(error)):
        train.run(config, log=lambda _: None)
    # MLflow's exit handler ends the active run FINISHED: none may be left active.
    assert mlflow.active_run() is None
    [run] = _runs(store_uri)
    assert run.info.status == status


def _cell_run(uri: str, cell, status: str, metrics: dict | None = None, tags: dict | None = None):
    from harness.store import tracking

    config = cell.config.resolved()
    logger = tracking.RunLogger.create(uri, config.experiment, tags={**config.tags, **(tags or {})})
    if metrics:
        logger.log_metrics(metrics, step=1)
    logger.end(status)


PLAN = 'name = "c"\ndatasets = ["horses"]\nseeds = [0]\nvariants = ["bn"]\n[run]\nepochs = 1\n'


@pytest.mark.parametrize("status,metrics,tags,state", [
    ("FINISHED", {"d_loss": 1.0}, {}, "FINISHED"),  # trained
    ("FINISHED", None, {}, "KILLED"),  # case 1 on older code: FINISHED by the exit handler, untrained
    ("FAILED", None, {"failure_cause": "environment"}, "KILLED"),  # the store's fault: retried
    ("FAILED", None, {}, "FAILED"),  # diverged: left alone unless --retry-failed
])
def test_a_cell_is_done_only_when_its_run_trained(store_uri, tmp_path, status, metrics, tags, state):
    from harness.campaign.plan import load_plan
    from harness.campaign.state import cell_states

    (tmp_path / "plan.toml").write_text(PLAN)
    plan = load_plan(tmp_path / "plan.toml", tracking_uri=store_uri, checkpoint_dir=str(tmp_path / "ck"))
    _cell_run(store_uri, plan.cells[0], status, metrics, tags)
    [cell] = cell_states(plan)
    assert cell.status == state
