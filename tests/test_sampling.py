"""sample / register: the logged generator loads, draws reproducible images, and is found by id,
registry name, alias or best FID."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from harness import cli
from harness.errors import ConfigError, TrackingError
from harness.generators import sampling


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One tracking store for the module: creating an SQLite store costs seconds of migrations."""
    folder = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # ./mlruns lands here
        yield f"sqlite:///{folder / 'mlflow.db'}"


def log_generator(uri: str, experiment: str = "horses") -> str:
    """A FINISHED run with a tiny random generator; returns its run id."""
    import keras

    from harness.store import tracking
    from variants import resolve
    from variants.builders import build_generator

    keras.utils.set_random_seed(0)
    logger = tracking.RunLogger.start(uri, experiment)
    logger.log_generator(build_generator(resolve("animals_baseline").scaled(0.125)), ["numpy"])
    logger.end("FINISHED")
    return logger.run_id


def scored_run(uri: str, experiment: str, fids: list[float], status: str = "FINISHED",
               backbone: str = "inception") -> str:
    """A run (without a generator) whose ``fid`` is ``fids[k]`` at step k + 1."""
    from harness.store import tracking

    client = tracking.client(uri)
    run = client.create_run(tracking.experiment_id(uri, experiment))
    for key, value in (("eval_backbone", backbone), ("eval_n_real", "5000"), ("eval_n_fake", "5000")):
        client.log_param(run.info.run_id, key, value)
    for step, fid in enumerate(fids, 1):
        client.log_metric(run.info.run_id, "fid", fid, step=step)
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def read_png_of(uri: str, model: str) -> np.ndarray:
    """The 2-image grid that ``sample --n 2`` writes for ``model`` (32x32 images shown at 64)."""
    from harness.images import enlarged, grid

    return enlarged(grid(sampling.sample(sampling.load_generator(uri, model), [0, 1])), 2)


def test_run_logs_a_pyfunc_generator_and_registers_it(cifar10_root, store, tmp_path, capsys):
    import mlflow

    tracking_uri = store
    code = cli.main(["run", "--variant", "animals_baseline", "--dataset", "horses", "--epochs", "1",
                     "--batch-size", "32", "--max-images", "64", "--width", "0.125", "--no-progress",
                     "--tracking-uri", tracking_uri, "--checkpoint-dir", str(tmp_path / "ck"),
                     "--register", "horse-gen", "--eval-every", "0"])
    assert code == 0
    out = capsys.readouterr().out
    run_id = re.search(r"^run (\w+) FINISHED", out, re.M).group(1)
    assert "registered models:/horse-gen/1" in out

    # The server's model: one image per seed, the same seed the same image.
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/generator")
    assert [p.name for p in model.metadata.signature.params.params] == ["format"]
    out = model.predict({"seed": [3, 3, 4]})
    images = np.stack(out["image"])
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images[0], images[1]) and not np.array_equal(images[0], images[2])

    # sample's Keras network draws exactly what the server draws, found by run id or registry.
    for uri in (sampling.model_uri(tracking_uri, run_id=run_id), "models:/horse-gen/1"):
        generator = sampling.load_generator(tracking_uri, uri)
        assert np.array_equal(sampling.sample(generator, [3, 4]), images[1:])


def test_sample_writes_a_reproducible_grid_and_single_pngs(store, tmp_path):
    run_id = log_generator(store)
    args = ["sample", "--run-id", run_id, "--n", "6", "--seed", "3", "--tracking-uri", store]
    assert cli.main([*args, "--out", str(tmp_path / "a.png"), "--out-dir", str(tmp_path / "each")]) == 0
    assert cli.main([*args, "--out", str(tmp_path / "b.png")]) == 0

    grid = read_png(tmp_path / "a.png")
    # 6 images: 3 columns, 2 rows, 2 px padding, then each pixel a 2x2 block (32x32 images shown at 64)
    assert grid.shape == (2 * (2 * 34 + 2), 2 * (3 * 34 + 2), 3)
    assert np.array_equal(grid, read_png(tmp_path / "b.png"))
    singles = sorted(p.name for p in (tmp_path / "each").iterdir())
    assert singles == [f"seed_{s:06d}.png" for s in range(3, 9)]
    single = read_png(tmp_path / "each" / "seed_000004.png")  # at its own size
    assert np.array_equal(single, grid[4:68:2, 72:136:2]) and np.array_equal(single, grid[5:68:2, 73:136:2])
    assert cli.main([*args, "--out", str(tmp_path / "c.png"), "--scale", "1"]) == 0
    assert np.array_equal(read_png(tmp_path / "c.png"), grid[::2, ::2])


def test_interpolation_strip_runs_from_one_seed_to_the_other(store, tmp_path):
    run_id = log_generator(store)
    generator = sampling.load_generator(store, f"runs:/{run_id}/generator")
    strip = sampling.interpolate(generator, [(1, 2)], steps=5)
    assert strip.shape == (5, 32, 32, 3)
    assert np.array_equal(strip[0], sampling.sample(generator, [1])[0])
    assert np.array_equal(strip[-1], sampling.sample(generator, [2])[0])
    assert cli.main(["sample", "--run-id", run_id, "--interpolate", "1", "2", "--interpolate", "3", "4",
                     "--steps", "5", "--out", str(tmp_path / "strip.png"), "--tracking-uri", store]) == 0
    assert read_png(tmp_path / "strip.png").shape == (2 * (2 * 34 + 2), 2 * (5 * 34 + 2), 3)


def test_slerp_follows_the_great_circle():
    a, b = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    path = sampling.slerp(a, b, np.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(path, [[1, 0], [2 ** -0.5, 2 ** -0.5], [0, 1]], atol=1e-6)
    same = sampling.slerp(a, a, np.array([0.3]))  # parallel: no division by sin(0)
    np.testing.assert_allclose(same, [a])


def test_best_is_the_lowest_final_fid_of_finished_runs(store):
    from harness.store import tracking

    scored_run(store, "eagles", [])
    with pytest.raises(ConfigError, match="--eval-every"):
        sampling.lowest_fid_run(store, "eagles")
    scored_run(store, "cats", [1.0, 9.0])  # best early, but its final FID is 9
    scored_run(store, "cats", [0.5], status="FAILED")
    scored_run(store, "cats", [float("nan")])
    best = log_generator(store, "cats")
    client = tracking.client(store)
    for key, value in (("eval_backbone", "inception"), ("eval_n_real", "5000"), ("eval_n_fake", "5000")):
        client.log_param(best, key, value)
    client.log_metric(best, "fid", 5.0, step=1)
    assert sampling.lowest_fid_run(store, "cats") == (best, 5.0)
    assert sampling.model_uri(store, best=True, dataset="cifar10:cats", log=lambda _: None) == \
        tracking.generator_uri(store, best)

    # FIDs from another backbone are not comparable: refuse to mix, unless told which.
    scored_run(store, "cats", [2.0], backbone="cifar10_classifier")
    with pytest.raises(ConfigError, match="not comparable"):
        sampling.lowest_fid_run(store, "cats")
    assert sampling.lowest_fid_run(store, "cats", backbone="inception") == (best, 5.0)


def test_registry_alias_and_uri_forms(store, tmp_path):
    run_id = log_generator(store)
    assert cli.main(["register", "--run-id", run_id, "--name", "gen", "--alias", "champion",
                     "--tracking-uri", store]) == 0
    expected = read_png_of(store, f"runs:/{run_id}/generator")
    for model in ("models:/gen/champion", "models:/gen@champion", "models:/gen/1"):
        assert cli.main(["sample", "--model", model, "--n", "2", "--out", str(tmp_path / "s.png"),
                         "--tracking-uri", store]) == 0
        assert np.array_equal(read_png(tmp_path / "s.png"), expected)
    assert sampling.registry_uri("models:/gen/champion") == "models:/gen@champion"
    assert sampling.registry_uri("models:/gen/3") == "models:/gen/3"
    assert sampling.registry_uri("models:/gen/latest") == "models:/gen/latest"


def test_bad_inputs_say_what_to_do(store, capsys):
    tracking_uri = store
    with pytest.raises(TrackingError, match="no such run"):
        sampling.model_uri(tracking_uri, run_id="0123abc")
    with pytest.raises(ConfigError, match="not an MLflow model URI"):
        sampling.model_uri(tracking_uri, model="gen")
    with pytest.raises(TrackingError, match="models:/missing/1"):
        sampling.load_generator(tracking_uri, "models:/missing/1")
    with pytest.raises(ConfigError, match="--dataset"):
        sampling.model_uri(tracking_uri, best=True)
    assert cli.main(["sample", "--run-id", "x", "--n", "0", "--tracking-uri", tracking_uri]) == 2
    assert "--n 0 must be at least 1" in capsys.readouterr().err
    # A name the registry refuses stops `run --register` before any training.
    assert cli.main(["run", "--variant", "animals_baseline", "--dataset", "horses", "--register", "a/b",
                     "--tracking-uri", tracking_uri]) == 2
    assert "'a/b' must be non-empty, without '/'" in capsys.readouterr().err
