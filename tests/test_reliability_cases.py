"""Each case of the third reliability round as a row: a run that fails while its tracking
starts, a plan edited while a campaign runs, read-only commands that must not write."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import RunConfig


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
                       width=0.125, tracking_uri=store_uri, progress=False, xla="off", eval_every=0,
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


# --- cases 4 and 5: a store is checked before it is read, and read-only commands write nothing ----
def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() and "report" not in p.parts}


def _store_file(folder: Path, kind: str) -> None:
    """``mlflow.db`` as ``kind``: absent, empty, not SQLite, or a real store cut short."""
    if kind == "empty":
        (folder / "mlflow.db").write_bytes(b"")
    elif kind == "not sqlite":
        (folder / "mlflow.db").write_text("these are notes, not a database\n" * 50)
    elif kind == "truncated":
        import sqlite3

        with sqlite3.connect(folder / "mlflow.db") as db:
            db.execute("CREATE TABLE experiments (id INTEGER, name TEXT)")
            db.executemany("INSERT INTO experiments VALUES (?, ?)", [(i, "x" * 500) for i in range(400)])
        data = (folder / "mlflow.db").read_bytes()
        (folder / "mlflow.db").write_bytes(data[: len(data) // 2])


READ_ONLY = [["report", "--out", "report"], ["campaign", "plan.toml", "--status"],
             ["campaign", "plan.toml", "--dry-run"]]


@pytest.mark.parametrize("argv", READ_ONLY, ids=lambda a: " ".join(a[:3]))
@pytest.mark.parametrize("kind,code,message", [
    ("absent", None, None), ("empty", 0, None),
    ("not sqlite", 2, "is not an SQLite database"), ("truncated", 2, "is damaged"),
])
def test_read_only_commands_check_the_store_and_write_nothing(tmp_path, monkeypatch, capsys, data_root,
                                                             argv, kind, code, message):
    from harness import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "plan.toml").write_text(PLAN)
    _store_file(tmp_path, kind)
    before = _snapshot(tmp_path)
    result = cli.main([*argv, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    err = capsys.readouterr().err
    assert _snapshot(tmp_path) == before  # no store, no optuna.db, no schema written, no file touched
    assert "Traceback" not in err
    if code is not None:
        assert result == code, err
    if message:
        assert message in err and len(err.strip().splitlines()) == 1


# --- case 2: a plan edited while a campaign runs ----------------------------------------------
@pytest.mark.parametrize("first,second", [
    ([0, 1, 2], [0, 1, 2, 3, 4]),  # seeds 3, 4 added while the first process runs
    ([0, 1, 2, 3, 4], [0, 1, 2]),  # seeds 3, 4 removed while the first process runs
])
def test_a_plan_edited_while_a_campaign_runs_loses_no_cell(tmp_path, monkeypatch, first, second):
    """Whichever version enqueued them, the process with the shorter plan takes the next cell
    first: it must leave the cells it does not know to the other, not fail them."""
    from optuna.trial import TrialState

    from harness.campaign import run as campaign
    from harness.campaign.plan import load_plan
    from harness.campaign.queue import KEY, CellQueue
    from harness.train.run import RunResult

    def plan(seeds, name):
        (tmp_path / name).write_text(PLAN.replace("seeds = [0]", f"seeds = {seeds}"))
        return load_plan(tmp_path / name, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                         checkpoint_dir=str(tmp_path / "ck"))

    trained: list[str] = []
    monkeypatch.setattr(campaign, "finished_run", lambda cell: None)
    monkeypatch.setattr(campaign, "train_cell", lambda cell, log: trained.append(cell.key) or RunResult("r", "FINISHED", 1))
    monkeypatch.setattr(campaign, "progress_line", lambda plan, cell, result: "")
    old, new = plan(first, "old.toml"), plan(second, "new.toml")
    options = campaign.Options(storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    queue = CellQueue("c", options.url)
    # The second process enqueues its version's cells before the first one takes the next cell.
    queue.sync([c.key for c in old.cells])
    queue.sync([c.key for c in new.cells])
    shorter, longer = sorted((old, new), key=lambda p: len(p.cells))
    outcome = campaign.Outcome()
    campaign.work(shorter, options, outcome, log=lambda _: None)
    assert sorted(trained) == sorted(c.key for c in shorter.cells) and not outcome.failed
    campaign.work(longer, options, outcome, log=lambda _: None)
    everything = {c.key for c in old.cells} | {c.key for c in new.cells}
    assert sorted(trained) == sorted(everything)  # each cell once, none failed as "not in this plan"
    assert not queue.trials(TrialState.FAIL) and not queue.trials(TrialState.WAITING)
    assert {t.user_attrs[KEY] for t in queue.trials(TrialState.COMPLETE)} == everything


# --- case 6 and 7: plans too large or badly named ------------------------------------------------
@pytest.mark.parametrize("plan,argv,message", [
    ('name = "big"\ndatasets = ["horses"]\nseeds = {seeds}\nvariants = ["bn", "animals_baseline"]\n'
     .format(seeds=list(range(48_000))), [], "96000 cells (1 datasets x 2 variants x 48000 seeds) is above the cap"),
    ('name = ".."\ndatasets = ["horses"]\nseeds = [0]\nvariants = ["bn"]\n', [], "name '..' must be"),
    (PLAN, ["--max-cells", "0"], "--max-cells 0 must be a positive whole number"),
])
def test_a_plan_too_large_or_badly_named_is_refused_at_once(tmp_path, monkeypatch, capsys, plan, argv, message):
    import time

    from harness import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "plan.toml").write_text(plan)
    start = time.perf_counter()
    assert cli.main(["campaign", "plan.toml", "--dry-run", *argv]) == 2
    assert time.perf_counter() - start < 10  # it took minutes to build 96,000 settings hashes
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_plan_lifted_over_the_cap_builds_its_settings_hashes_once(tmp_path):
    from harness.campaign.plan import load_plan

    (tmp_path / "plan.toml").write_text(PLAN.replace("seeds = [0]", f"seeds = {list(range(3))}"))
    plan = load_plan(tmp_path / "plan.toml", max_cells=3)
    cell = plan.cells[0]
    assert cell.__dict__["settings_md5"] == cell.config.tags["campaign.settings_md5"]  # kept from building it
    with pytest.raises(Exception, match="above the cap of 2"):
        load_plan(tmp_path / "plan.toml", max_cells=2)


def test_a_cells_new_attempt_is_named_apart_from_its_stopped_run(store_uri, tmp_path, monkeypatch):
    from harness.campaign import run as campaign
    from harness.campaign.plan import load_plan
    from harness.train import run as train

    (tmp_path / "plan.toml").write_text(PLAN)
    plan = load_plan(tmp_path / "plan.toml", tracking_uri=store_uri, checkpoint_dir=str(tmp_path / "ck"))
    _cell_run(store_uri, plan.cells[0], "KILLED")  # stopped before its first checkpoint
    names = []
    monkeypatch.setattr(train, "run", lambda config, resume, log: names.append((config.run_name, resume)))
    campaign.train_cell(plan.cells[0], log=lambda _: None)
    assert names == [(f"{plan.cells[0].config.run_name}-attempt2", None)]


def test_a_dead_worker_on_this_host_is_seen_at_once(tmp_path):
    """Its heartbeat would take minutes to go stale; its pid is gone now."""
    import subprocess
    import sys

    from optuna.trial import TrialState

    from harness.campaign.queue import KEY, CellQueue
    from studies.storage import worker_id

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    queue = CellQueue("c", f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_s=60)
    queue.sync(["horses/bn/s0"])
    claim = queue.claim()
    queue.storage.set_trial_user_attr(claim.trial_id, "worker", worker_id().rsplit(":", 1)[0] + f":{dead.pid}")
    assert queue.holders() == {"horses/bn/s0": worker_id().rsplit(":", 1)[0] + f":{dead.pid} (gone)"}
    again = queue.claim()  # the rerun takes the cell back at once
    assert again is not None and again.key == "horses/bn/s0"
    assert [t.user_attrs[KEY] for t in queue.trials(TrialState.FAIL)] == ["horses/bn/s0"]


# --- case 7: what a refusal says ------------------------------------------------------------------
def test_a_generator_keras_refuses_for_safety_is_said_to_be_refused_for_safety(tmp_path, monkeypatch):
    import keras

    from harness.errors import ConfigError
    from harness.generators import files

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(12, activation="tanh"), keras.layers.Reshape((2, 2, 3))])
    model.save(tmp_path / "g.keras")

    def refuse(*args, **kwargs):  # what Keras raises for code its safe mode does not run
        raise ValueError("Requested the deserialization of a Lambda layer whose `function` is a Python lambda. "
                         "This carries a potential risk of arbitrary code execution; pass `safe_mode=False` "
                         "to allow it.")

    monkeypatch.setattr(keras.saving, "load_model", refuse)
    with pytest.raises(ConfigError, match="refused for safety") as caught:
        files.load(tmp_path / "g.keras")
    assert "damaged" not in str(caught.value)


def test_export_to_a_place_that_takes_no_files_says_not_writable(tmp_path, monkeypatch, capsys):
    from harness import cli

    monkeypatch.chdir(tmp_path)
    code = cli.main(["export", "--run-id", "abc", "--out", "/proc/g.h5",
                     "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    err = capsys.readouterr().err
    assert code == 2 and "is not writable" in err and "does not exist" not in err, err
    assert not (tmp_path / "mlflow.db").exists()  # refused before any store is opened


def test_variants_prints_plain_names_without_rest_backticks(capsys):
    from harness import cli

    assert cli.main(["variants"]) == 0
    out = capsys.readouterr().out
    assert "bn_kernel4" in out and "``" not in out
