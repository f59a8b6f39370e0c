"""The evaluator end to end on the tiny Inception graph: sampling, features, scores, cache, choice."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from test_metrics_inception import TINY, tiny_graph_def  # noqa: E402

from harness.errors import ConfigError  # noqa: E402
from harness.measure import fid, inception_score, kid  # noqa: E402
from harness.measure.backbones import inception, load_backbone  # noqa: E402
from harness.measure.evaluator import EVAL_PARAMS, make_evaluator  # noqa: E402

LATENT, SIZE = 4, 8
KEYS = {"fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "density", "coverage", "feature_img_s",
        "eval_seconds"}


@pytest.fixture
def graph_file(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_INCEPTION", raising=False)
    monkeypatch.setattr(inception, "REFERENCE", TINY)  # accept the tiny graph as "the" network
    path = tmp_path / inception.GRAPH_FILE
    path.write_bytes(tiny_graph_def()[0].SerializeToString())
    return path


@pytest.fixture
def real():
    return np.random.default_rng(0).integers(0, 256, size=(40, SIZE, SIZE, 3), dtype=np.uint8)


def generator():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((LATENT,)), keras.layers.Dense(SIZE * SIZE * 3, activation="tanh"),
                             keras.layers.Reshape((SIZE, SIZE, 3))])


def test_evaluate_scores_the_generator_as_the_formulas_do(graph_file, real, tmp_path):
    ev = make_evaluator(dataset_key="test:tiny:train:8:abc", reference_images=real, n_samples=30,
                        backbone="inception", inception_path=str(graph_file), cache_dir=tmp_path / "cache",
                        log=lambda *_: None)
    assert ev.backbone_name == "inception-2015-12-05"
    md5 = hashlib.md5(graph_file.read_bytes()).hexdigest()
    assert ev.params() == {"eval_backbone": "inception-2015-12-05", "eval_backbone_md5": md5,
                           "eval_backbone_settings": "pool_3 4-d features, 5-way softmax, resize 9x9",
                           "eval_n_real": "40", "eval_n_fake": "30", "eval_reference": "train", "eval_n_curve": "30",
                           "eval_prdc_k": "3/5", "eval_fid_infinity": "off", "eval_floor": "none"}
    assert set(EVAL_PARAMS) <= set(ev.params()) and ev.warning is None  # Inception has no floor
    g = generator()
    scores = ev.evaluate(g, latent_dim=LATENT, seed=3)
    assert set(scores) == KEYS and all(np.isfinite(v) for v in scores.values())

    # The same numbers by hand: seeded N(0, 1) noise, (x + 1) * 127.5 rounded and clipped.
    z = np.random.default_rng(3).standard_normal((30, LATENT)).astype(np.float32)
    fake = np.clip(np.rint((g.predict(z, verbose=0) + 1) * 127.5), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(ev.sample(g, latent_dim=LATENT, seed=3), fake)
    net = ev.backbone
    real_f, fake_f = net.features(real), net.features(fake)
    assert scores["fid"] == pytest.approx(
        fid.frechet_distance(*fid.statistics(real_f), *fid.statistics(fake_f))[0], rel=1e-6)
    assert (scores["kid"], scores["kid_std"]) == pytest.approx(kid.kernel_inception_distance(real_f, fake_f, seed=3))
    assert (scores["is"], scores["is_std"]) == pytest.approx(inception_score.inception_score(net.probabilities(fake)))
    assert 1.0 <= scores["is"] <= TINY.num_classes
    assert ev.evaluate(g, latent_dim=LATENT, seed=3)["fid"] == scores["fid"]


def test_reference_statistics_are_cached_and_never_recomputed(graph_file, real, tmp_path):
    kwargs = dict(dataset_key="test:tiny:train:8:abc", reference_images=real, n_samples=20,
                  backbone="inception", inception_path=str(graph_file), cache_dir=tmp_path, log=lambda *_: None)
    first = make_evaluator(**kwargs)
    assert first.reference.computed and first.reference.path.is_file()
    assert first.reference.path.is_relative_to(tmp_path / "metrics" / "reference")
    second = make_evaluator(**kwargs)
    assert not second.reference.computed
    np.testing.assert_array_equal(second.reference.sigma, first.reference.sigma)
    other = make_evaluator(**{**kwargs, "dataset_key": "test:tiny:train:8:other"})
    assert other.reference.computed and other.reference.path != first.reference.path


def test_one_channel_reference_images_are_replicated(graph_file, real, tmp_path):
    gray = real[..., :1]
    ev = make_evaluator(dataset_key="gray", reference_images=gray, n_samples=10, backbone="inception",
                        inception_path=str(graph_file), cache_dir=tmp_path, log=lambda *_: None)
    np.testing.assert_allclose(ev.reference.mu, fid.statistics(ev.backbone.features(np.repeat(gray, 3, -1)))[0])


def test_backbone_choice_and_its_errors(graph_file, tmp_path, monkeypatch):
    assert load_backbone("auto", inception_path=graph_file, cache_dir=tmp_path).name == "inception-2015-12-05"
    empty = tmp_path / "empty"
    monkeypatch.setenv("HARNESS_DATA_DIR", str(empty))
    monkeypatch.delenv("HARNESS_INCEPTION_MD5", raising=False)
    with pytest.raises(ConfigError, match="backbone train.*--inception PATH"):
        load_backbone("auto", cache_dir=empty)
    with pytest.raises(ConfigError, match="Inception graph was not found"):
        load_backbone("inception", cache_dir=empty)
    with pytest.raises(ConfigError, match="no offline CIFAR-10 backbone"):
        load_backbone("cifar10_classifier", cache_dir=empty)
    with pytest.raises(ConfigError, match="did you mean 'inception'"):
        load_backbone("incepton")


def test_bad_reference_images_are_refused(graph_file, tmp_path):
    with pytest.raises(ConfigError, match="uint8"):
        make_evaluator(dataset_key="x", reference_images=np.zeros((4, 8, 8, 3), np.float32), n_samples=10,
                       inception_path=str(graph_file), cache_dir=tmp_path)
