"""The store: plain run records through a real SQLite store, the schema's rules, storage URLs."""

from __future__ import annotations

import gzip
from pathlib import Path
from types import SimpleNamespace

from harness.store import schema, tracking
from harness.store.urls import redact


def test_a_logged_run_reads_back_as_a_plain_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # artifacts go under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.ensure_store(uri)
    logger = tracking.RunLogger.create(uri, "horses", run_name="r", tags={schema.VARIANT_TAG: "bn"})
    logger.log_params({"epochs": 3})
    logger.log_metrics({"fid": 12.5}, step=1)
    logger.end("FINISHED")
    [run] = tracking.find_runs(uri, "horses", tags={schema.VARIANT_TAG: "bn"})
    assert isinstance(run, tracking.StoredRun) and run == tracking.get_run(uri, logger.run_id)
    assert (run.run_id, run.name, run.status) == (logger.run_id, "r", "FINISHED")
    assert run.params == {"epochs": "3"} and run.metrics == {"fid": 12.5} and run.tags["variant"] == "bn"
    assert run.end_time >= run.start_time > 0 and run.minutes is not None
    assert tracking.set_status(uri, run.run_id, "RUNNING") and tracking.get_run(uri, run.run_id).status == "RUNNING"
    assert not tracking.set_status(uri, "0" * 32, "RUNNING")
    parent = schema.open_parent(uri, "campaigns", "p", {"campaign": "x", schema.CAMPAIGN_PARENT_TAG: "true"})
    again = schema.open_parent(uri, "campaigns", "p", {"campaign": "x", schema.CAMPAIGN_PARENT_TAG: "true"})
    assert parent == again and tracking.get_run(uri, parent).status == "RUNNING"


def _run(status, md5=None, trained=True, tags=None):
    return SimpleNamespace(status=status, tags={**({schema.HASH_TAG: md5} if md5 else {}), **(tags or {})},
                           metrics={schema.TRAINED_METRIC: 1.0} if trained else {})


def test_cell_status_rules():
    assert schema.cell_status([], "a") == ("MISSING", None)
    same, other = _run("FINISHED", "a"), _run("FINISHED", "b")
    assert schema.cell_status([other, same], "a") == ("FINISHED", same)
    assert schema.cell_status([other], "a") == ("CHANGED", other)
    assert schema.cell_status([_run("FINISHED", "a", trained=False)], "a")[0] == "KILLED"
    assert schema.cell_status([_run("FAILED", tags={schema.FAILURE_CAUSE_TAG: "environment"})], "a")[0] == "KILLED"
    assert schema.cell_status([_run("FAILED")], "a")[0] == "FAILED"
    assert schema.cell_status([_run("RUNNING")], "a")[0] == "RUNNING"


def test_settings_hash_is_stable_and_ignores_key_order():
    assert schema.settings_md5({"epochs": 2, "variant": "bn"}) == schema.settings_md5({"variant": "bn", "epochs": 2})
    assert schema.settings_md5({"epochs": 2, "variant": "bn"}) == "e9ec3d238ea7"  # what stored tags hold
    assert schema.settings_md5({"epochs": 3, "variant": "bn"}) != schema.settings_md5({"epochs": 2, "variant": "bn"})


def test_storage_urls_are_parsed_once_and_shown_without_passwords():
    assert schema.parse_storage("runs/a.journal") == schema.Storage("journal", "journal:runs/a.journal",
                                                                    schema.Path("runs/a.journal"))
    assert schema.parse_storage("journal:x.log").kind == "journal"
    assert schema.parse_storage("x.log").kind == "unknown"
    assert schema.parse_storage("x.log", journal_suffixes=(".log",)).kind == "journal"
    pg = schema.parse_storage("postgresql://u:pw@h/db")
    assert (pg.kind, pg.url) == ("postgresql", "postgresql+psycopg://u:pw@h/db")
    assert schema.parse_storage("sqlite:///o.db").path == schema.Path("o.db")
    assert schema.parse_storage("redis://h").kind == "unknown"
    assert redact(pg.url) == "postgresql+psycopg://u:***@h/db" and "pw" not in tracking.public(pg.url)


# --- what the previous layout wrote still opens ------------------------------------------------
# tests/fixtures/before_layers/ holds a store and a checkpoint written by the code before the
# packages were layered (commit 05b6440): `run --variant bn --dataset horses --max-images 128
# --epochs 1 --width 0.125 --batch-size 64 --seed 3 --no-clean-checkpoints`, the store vacuumed
# and gzipped.
BEFORE = Path(__file__).parent / "fixtures" / "before_layers"
BEFORE_RUN = "ebf697e9d3ca4cb387d3e04b074f5d27"


def test_a_store_written_before_the_layers_reads_as_plain_records(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(gzip.decompress((BEFORE / "mlflow.db.gz").read_bytes()))
    uri = f"sqlite:///{db}"
    tracking.ensure_store(uri)  # checks, and migrates nothing that is current
    [run] = tracking.find_runs(uri, "horses", tags={schema.VARIANT_TAG: "bn"})
    assert (run.run_id, run.status) == (BEFORE_RUN, "FINISHED")
    assert run.params["variant"] == "bn" and run.params["seed"] == "3" and run.params["width"] == "0.125"
    assert schema.trained(run) and run.metrics["d_loss"] > 0


def test_a_checkpoint_written_before_the_layers_restores_into_todays_model():
    from harness.config import RunConfig
    from harness.train import checkpoints
    from harness.train.gan import GAN
    from variants import resolve

    meta = checkpoints.read_meta(BEFORE / "epoch-0001.npz")
    config = RunConfig.from_dict(meta["config"])  # settings added since take their defaults
    assert (meta["epoch"], meta["run_id"], config.variant, config.seed) == (1, BEFORE_RUN, "bn", 3)
    spec = resolve(config.variant).scaled(config.width)
    gan = GAN(spec, seed=0)
    gan.compile()
    restored = checkpoints.restore(BEFORE / "epoch-0001.npz", gan, required=("fixed_noise",),
                                   run_id=BEFORE_RUN)
    assert restored["arrays"]["fixed_noise"].shape == (64, spec.latent_dim)
