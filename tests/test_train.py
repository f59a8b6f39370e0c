"""The training step's metrics and a real run end to end, checked through MlflowClient."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harness.config import RunConfig
from harness.errors import ConfigError, DataError, TrainingFailed
from variants import resolve


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_step_metrics_match_numpy():
    """real_acc, d_real and d_loss_real equal a NumPy computation on D's logits."""
    from harness.train.gan import GAN

    # No dropout, no BatchNorm: D(x) in the step equals D(x) computed beforehand.
    spec = resolve("nobn_nodrop_split").scaled(0.125)
    gan = GAN(spec, seed=3)
    gan.compile(run_eagerly=True)
    real = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    scaled = real.astype(np.float32) / 127.5 - 1.0
    # Push half of the batch to the other side of 0.5 so the accuracy is not trivially 0 or 1.
    bias = gan.discriminator.get_layer("logit").bias
    logits = gan.discriminator(scaled).numpy().ravel()
    bias.assign(bias.numpy() - np.median(logits))
    logits = gan.discriminator(scaled).numpy().ravel()
    logs = gan.train_step(real)
    p = _sigmoid(logits)
    assert float(logs["real_acc"]) == pytest.approx(np.mean(p > 0.5))
    assert 0 < np.mean(p > 0.5) < 1
    assert float(logs["d_real"]) == pytest.approx(p.mean(), rel=1e-5)
    assert float(logs["d_loss_real"]) == pytest.approx(-np.mean(np.log(p)), rel=1e-4)
    assert float(logs["d_loss"]) == pytest.approx(0.5 * (float(logs["d_loss_real"]) + float(logs["d_loss_fake"])))


def test_fake_acc_matches_numpy_in_mixed_mode():
    """In mixed mode the fake logits come from the same pre-update D: recompute them."""
    import keras

    from harness.train.gan import GAN

    spec = resolve("nobn_nodrop_mixed").scaled(0.125)
    gan = GAN(spec, seed=5)
    gan.compile(run_eagerly=True)
    real = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    # Replay the step's first noise draw with an identical seed generator.
    replay = keras.random.SeedGenerator(5)
    z = keras.random.normal((8, spec.latent_dim), seed=replay)
    fake_logits = gan.discriminator(gan.generator(z, training=True)).numpy().ravel()
    logs = gan.train_step(real)
    assert float(logs["fake_acc"]) == pytest.approx(np.mean(_sigmoid(fake_logits) < 0.5))
    assert float(logs["d_fake"]) == pytest.approx(_sigmoid(fake_logits).mean(), rel=1e-4)


def _config(tracking_uri, tmp_path, **changes):
    values = dict(variant="bn_kernel4", dataset="horses", epochs=2, batch_size=32, max_images=128,
                  width=0.125, tracking_uri=tracking_uri, progress=False, eval_every=0,
                  checkpoint_dir=str(tmp_path / "ck"))
    values.update(changes)
    return RunConfig(**values)


def test_run_logs_everything_to_mlflow(cifar10_root, tracking_uri, tmp_path):
    import mlflow

    from harness.store.tracking import client
    from harness.train import run as train

    result = train.run(_config(tracking_uri, tmp_path), log=lambda *_: None)
    c = client(tracking_uri)
    run = c.get_run(result.run_id)
    assert run.info.status == "FINISHED" and result.status == "FINISHED"
    params = run.data.params
    assert params["batchnorm"] == "both" and params["kernel"] == "4" and params["d_update"] == "split"
    assert params["data_name"] == "horses" and params["data_count"] == "128"
    assert run.data.tags["variant"] == "bn_kernel4" and run.data.tags["dataset"] == "horses"
    assert c.get_experiment(run.info.experiment_id).name == "horses"
    for key in ("d_loss", "d_loss_real", "d_loss_fake", "g_loss", "real_acc", "fake_acc", "d_real", "d_fake",
                "images_per_s"):
        history = c.get_metric_history(result.run_id, key)
        assert [m.step for m in history] == [1, 2], key
    assert run.data.metrics["real_acc"] == pytest.approx(result.metrics["real_acc"])
    samples = [a.path for a in c.list_artifacts(result.run_id, "samples")]
    assert samples == ["samples/epoch_0001.png", "samples/epoch_0002.png"]
    assert {a.path for a in c.list_artifacts(result.run_id)} >= {"config.json", "checkpoints", "samples"}
    assert run.inputs.dataset_inputs[0].dataset.name == "horses"
    mlflow.set_tracking_uri(tracking_uri)
    assert mlflow.pyfunc.load_model(result.model_uri) is not None


def test_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(cifar10_root, tracking_uri, tmp_path, monkeypatch):
    from harness.store.tracking import client
    from harness.train import checkpoints, gan
    from harness.train import run as train

    config = _config(tracking_uri, tmp_path, epochs=1, variant="animals_baseline")
    first = train.run(config, log=lambda *_: None)
    real_bce = gan.bce
    monkeypatch.setattr(gan, "bce", lambda labels, logits: real_bce(labels, logits) * float("nan"))
    second = _config(tracking_uri, tmp_path, epochs=2, variant="animals_baseline")
    with pytest.raises(TrainingFailed, match="d_loss became nan at epoch 2"):
        train.run(second, resume=first.run_id, log=lambda *_: None)
    run = client(tracking_uri).get_run(first.run_id)
    assert run.info.status == "FAILED"
    assert "became nan" in run.data.tags["failure_reason"]
    kept = checkpoints.list_checkpoints(tmp_path / "ck" / first.run_id)
    assert [p.name for p in kept] == ["epoch-0001.npz"]
    assert [m.step for m in client(tracking_uri).get_metric_history(first.run_id, "d_loss")] == [1]


def test_bad_inputs_fail_before_training(cifar10_root, tracking_uri, tmp_path):
    from harness.train import run as train

    with pytest.raises(DataError, match="fewer than the 256 needed for one training batch"):
        train.run(_config(tracking_uri, tmp_path, batch_size=256), log=lambda *_: None)
    with pytest.raises(ConfigError, match="--epochs"):
        _config(tracking_uri, tmp_path, epochs=0)
    with pytest.raises(ConfigError, match="unknown token"):
        train.run(_config(tracking_uri, tmp_path, variant="bn_kernel5"), log=lambda *_: None)


def test_default_epochs_follow_the_published_study():
    assert RunConfig(variant="bn", dataset="spiders").resolved().epochs == 30
    assert RunConfig(variant="bn", dataset="animals10:elephants").resolved().epochs == 20
    assert RunConfig(variant="bn", dataset="folder:/data/eagles").resolved().epochs == 30
    assert RunConfig(variant="bn", dataset="trucks").resolved().epochs == 50
    assert RunConfig(variant="bn", dataset="horses", epochs=3).resolved().epochs == 3
    assert RunConfig(variant="bn", dataset="cifar10:horses").resolved().experiment == "horses"


def test_cli_run_end_to_end(data_root, tracking_uri, tmp_path):
    """The README's main command at tiny size, as a user runs it."""
    out = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--variant", "cars_bn_k4", "--dataset", "horses",
         "--epochs", "1", "--max-images", "64", "--batch-size", "32", "--width", "0.125",
         "--tracking-uri", tracking_uri, "--checkpoint-dir", str(tmp_path / "ck"), "--no-progress",
         "--eval-every", "0"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "FINISHED after 1 epochs" in out.stdout
    assert (tmp_path / "mlruns").is_dir()


def test_cli_variants_json_lists_presets():
    import json

    out = subprocess.run([sys.executable, "-m", "harness", "variants", "--json"],
                         capture_output=True, text=True, timeout=60)
    rows = json.loads(out.stdout)
    names = {row["name"] for row in rows}
    assert {"animals_baseline", "cifar_bn", "cars_bn_k4", "mnist_tutorial"} <= names
    cars = next(r for r in rows if r["name"] == "cars_bn_k4")
    assert (cars["batchnorm"], cars["kernel"], cars["dropout"], cars["d_update"]) == ("both", 4, "head", "split")
