"""The memorisation check (samples beside their nearest training images) and FID∞ in a short run."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")


from harness.errors import ConfigError  # noqa: E402
from harness.measure import memorisation  # noqa: E402
from harness.measure.provenance import EVAL_PARAMS  # noqa: E402


class PixelBackbone:
    """Features = the pixels, so nearness is checkable by hand."""

    name = "pixels"

    def features_and_probabilities(self, images):
        return np.asarray(images, np.float32).reshape(len(images), -1), None


def test_a_copied_training_image_is_found_first_at_distance_zero():
    rng = np.random.default_rng(0)
    training = rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    samples = np.stack([training[7], training[3] // 2 + 1, rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)])
    found = memorisation.nearest_training(PixelBackbone(), samples, training, k=3)
    assert found.indices.shape == (3, 3) and found.indices[0, 0] == 7 and found.distances[0, 0] == 0
    assert (np.diff(found.distances, axis=1) >= 0).all()  # nearest first
    flat = training.reshape(20, -1).astype(float)
    by_hand = np.argsort(np.linalg.norm(flat - samples[2].reshape(-1).astype(float), axis=1))[:3]
    assert list(found.indices[2]) == list(by_hand)
    assert found.typical > 0  # no two random training images coincide

    image = memorisation.neighbour_grid(samples, training, found, backbone="pixels", scale=4)
    assert image.dtype == np.uint8 and image.shape[2] == 3
    # Row 0, column 1 (the first neighbour) is training image 7, enlarged 4 times.
    pad, cell = 4, 32
    gap = max(12, cell // 4)
    header = 2 * memorisation._TEXT + pad
    first = image[header:header + cell, pad + cell + gap:pad + cell + gap + cell]
    assert (first == np.repeat(np.repeat(training[7], 4, axis=0), 4, axis=1)).all()
    assert image.shape[0] == header + 3 * (cell + memorisation._TEXT + pad) + pad  # one row per sample


def _run(tmp_path, tracking_uri, graph_file, **overrides):
    from harness.config import RunConfig
    from harness.train.run import run

    config = RunConfig(**{**dict(variant="animals_baseline", dataset="horses", epochs=2, batch_size=32,
                                 max_images=64, width=0.125, eval_samples=64, backbone="inception",
                                 inception=str(graph_file), tracking_uri=tracking_uri, progress=False, xla="off",
                                 checkpoint_dir=str(tmp_path / "ck")), **overrides})
    return run(config, log=lambda *_: None)


def test_a_run_logs_fid_infinity_and_its_nearest_grid_and_sample_draws_it(
        cifar10_root, graph_file, tracking_uri, tmp_path, monkeypatch, capsys):
    from harness.cli import main
    from harness.store import tracking

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    result = _run(tmp_path, tracking_uri, graph_file, fid_infinity=True)
    client = tracking.client(tracking_uri)
    params = client.get_run(result.run_id).data.params
    assert params["eval_fid_infinity"] == "on" and "eval_fid_infinity" in EVAL_PARAMS
    steps = {m.step for m in client.get_metric_history(result.run_id, "fid_infinity")}
    assert steps == {2}  # at the final evaluation only
    assert np.isfinite(result.metrics["fid_infinity"])
    logged = tracking.list_artifacts(tracking_uri, result.run_id, "nearest")
    assert memorisation.NEAREST_ARTIFACT in logged

    out = tmp_path / "nearest.png"
    assert main(["sample", "--run-id", result.run_id, "--nearest", "--n", "5", "--nearest-k", "2",
                 "--inception", str(graph_file), "--tracking-uri", tracking_uri, "--out", str(out)]) == 0
    assert "5 samples (seeds 0..4)" in capsys.readouterr().out
    height = 2 * memorisation._TEXT + 4 + 5 * (64 + memorisation._TEXT + 4) + 4  # 32 px images shown at 64
    assert Image.open(out).size[1] == height

    # The logged grid and the command's draw the same samples (seeds 0..7) beside the same images.
    drawn = tmp_path / "eight.png"
    main(["sample", "--run-id", result.run_id, "--nearest", "--inception", str(graph_file),
          "--tracking-uri", tracking_uri, "--out", str(drawn)])
    logged_file = tracking.download_artifact(tracking_uri, result.run_id, memorisation.NEAREST_ARTIFACT,
                                             tmp_path / "logged")
    assert np.asarray(Image.open(logged_file)).shape == np.asarray(Image.open(drawn)).shape

    # A backbone that is not here is named, with the run's.
    with pytest.raises(ConfigError, match=r"evaluated with inception-2015-12-05 \(md5 \w{8}\), which is not here"):
        from harness.generators.nearest import nearest_for_run

        nearest_for_run(result.run_id, tracking_uri=tracking_uri, inception_path=str(tmp_path / "missing.pb"))


def test_nearest_refuses_a_run_that_was_never_evaluated(cifar10_root, graph_file, tracking_uri, tmp_path,
                                                         monkeypatch):
    from harness.generators.nearest import nearest_for_run

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    result = _run(tmp_path, tracking_uri, graph_file, epochs=1, eval_every=0)
    with pytest.raises(ConfigError, match="has no recorded backbone.*harness eval --run-id"):
        nearest_for_run(result.run_id, tracking_uri=tracking_uri, inception_path=str(graph_file))
