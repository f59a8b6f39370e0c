"""Held-out references, floors, the curve of cheap evaluations, and IS left unranked."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")


from harness.errors import ConfigError  # noqa: E402
from harness.measure.evaluator import make_evaluator  # noqa: E402
from harness.measure.real_images import real_images  # noqa: E402


def _folder(tmp_path, count: int = 6):
    folder = tmp_path / "eagles"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return f"folder:{folder}"


def test_a_folder_has_no_held_out_split_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    spec = _folder(tmp_path)
    with pytest.raises(ConfigError, match=r"--eval-reference test: .* no held-out split \(its splits: train\)"):
        real_images(spec, image_size=32, choice="test")
    real = real_images(spec, image_size=32)
    assert real.split == "train" and real.floor is None and "no held-out split" in real.note
    assert real_images(spec, image_size=32, choice="train").note is None  # asked for: nothing to explain


def test_cifar10_is_scored_against_its_test_split(cifar10_root):
    real = real_images("horses", image_size=32)
    assert real.split == "test" and real.floor is not None and real.note is None
    assert real.key(real.reference).startswith("cifar10:horses:test:32:")
    assert real.key(real.floor).startswith("cifar10:horses:train:32:")
    assert real.floor.count > real.reference.count  # CIFAR-10: 5,000 training vs 1,000 test images a class


def test_more_samples_than_the_floor_has_is_refused_naming_both(graph_file, tmp_path):
    real = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ConfigError, match="--eval-samples 30 is more than the 20 training images.*--eval-samples 20 or fewer"):
        make_evaluator(dataset_key="t", reference_images=real, n_samples=30, backbone="inception",
                       inception_path=str(graph_file), cache_dir=tmp_path, floor_images=real[:20],
                       log=lambda *_: None)


def test_floors_are_computed_once_per_reference_and_n(graph_file, tmp_path, monkeypatch):
    from harness.measure import evaluator as evaluation

    rng = np.random.default_rng(1)
    reference, train = (rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8) for n in (40, 60))
    made = dict(dataset_key="t", reference_images=reference, n_samples=30, backbone="inception",
                inception_path=str(graph_file), cache_dir=tmp_path, floor_images=train, log=lambda *_: None)
    first = make_evaluator(**made).floors
    calls = []
    original = evaluation.Evaluator.floor_values
    monkeypatch.setattr(evaluation.Evaluator, "floor_values", lambda self, real: calls.append(real) or original(self, real))
    assert make_evaluator(**made).floors == pytest.approx(first) and not calls  # read, not computed
    for cached in tmp_path.rglob("*.floors-*.json"):
        cached.write_text("{not json")  # a damaged file is computed again
    assert make_evaluator(**made).floors == pytest.approx(first) and len(calls) == 1
    assert make_evaluator(**{**made, "n_samples": 20}).floors != first and len(calls) == 2  # another N
    assert set(first) >= {"fid_floor", "kid_floor"}


def test_a_short_run_draws_curves_above_its_floor(cifar10_root, graph_file, tracking_uri, tmp_path, monkeypatch):
    from harness.config import RunConfig
    from harness.store import tracking
    from harness.train.run import run

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    config = RunConfig(variant="animals_baseline", dataset="horses", epochs=5, batch_size=32, max_images=64,
                       width=0.125, eval_samples=64, backbone="inception", inception=str(graph_file),
                       tracking_uri=tracking_uri, progress=False, xla="off", checkpoint_dir=str(tmp_path / "ck"))
    assert config.eval_every is None  # evaluation is on without a flag
    result = run(config, log=lambda *_: None)
    client = tracking.client(tracking_uri)
    params = client.get_run(result.run_id).data.params
    assert (params["eval_reference"], params["eval_floor"], params["eval_n_curve"]) == ("test", "train images", "64")
    history = {key: {m.step: m.value for m in client.get_metric_history(result.run_id, key)}
               for key in ("kid", "precision", "recall", "density", "coverage", "fid", "kid_floor", "fid_floor")}
    for key in ("kid", "precision", "recall", "density", "coverage", "kid_floor"):
        assert sorted(history[key]) == [1, 2, 3, 4, 5], key  # five points by default
    assert sorted(history["fid"]) == [5]  # FID only at the end, at its full N
    # Real training images score better than a generator trained for one epoch (and for five).
    assert history["kid_floor"][1] < history["kid"][1]
    assert history["fid_floor"][5] < history["fid"][5]


def test_is_is_never_ranked():
    from reports.tables import VARIANT_COLUMNS, Table

    (column,) = [c for c in VARIANT_COLUMNS if c.key == "is"]
    assert column.better is None
    rows = [{"dataset": "horses", "is": 9.0, "is_std": 0.01, "fid": 10.0, "fid_std": 0.1},
            {"dataset": "horses", "is": 1.0, "is_std": 0.01, "fid": 50.0, "fid_std": 0.1}]
    best = Table("t", "t", VARIANT_COLUMNS, rows, group="dataset").best()
    assert (0, "fid") in best and not [cell for cell in best if cell[1] == "is"]
