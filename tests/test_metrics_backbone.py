"""The offline CIFAR-10 backbone: a few training steps at tiny width, saved, logged, loaded, used."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from harness.measure.backbones import cifar_classifier, load_backbone  # noqa: E402
from harness.measure.provenance import MIN_TEST_ACCURACY  # noqa: E402


@pytest.fixture(scope="module")
def trained(tiny_backbone):
    """conftest's session backbone: one epoch on a few hundred images with 2 channels, in a private cache."""
    meta = json.loads(cifar_classifier.model_path(tiny_backbone).with_suffix(".json").read_text())
    return tiny_backbone, f"sqlite:///{tiny_backbone / 'backbone.db'}", meta


def test_training_saves_the_model_and_its_meta_in_the_cache(trained):
    cache, _, meta = trained
    assert cifar_classifier.find_model(cache) == cifar_classifier.model_path(cache)
    assert meta["version"] == cifar_classifier.VERSION and meta["name"] == "cifar10_classifier-v1"
    assert meta["train_seconds"] > 0 and meta["n_train"] == meta["n_test"] <= 256  # max_images caps both
    assert 0.0 <= meta["test_accuracy"] <= 1.0 and meta["feature_dim"] == 8 * meta["channels"] == 16


def test_training_is_logged_to_the_backbones_experiment(trained):
    from harness.store import tracking

    _, uri, meta = trained
    client = tracking.client(uri)
    run = client.get_run(meta["mlflow_run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "backbones"
    assert run.info.status == "FINISHED" and run.data.params["channels"] == str(meta["channels"]) == "2"
    history = client.get_metric_history(run.info.run_id, "test_accuracy")
    assert [m.step for m in history] == [1] and history[0].value == meta["test_accuracy"]
    logged = {f.path for f in client.list_artifacts(run.info.run_id, "backbone")}
    assert logged == {"backbone/cifar10_classifier-v1.keras", "backbone/cifar10_classifier-v1.json"}


def test_the_saved_backbone_gives_features_and_probabilities(trained):
    cache, _, meta = trained
    backbone = load_backbone("auto", cache_dir=cache)
    dim = meta["feature_dim"]
    assert backbone.name == "cifar10_classifier-v1" and backbone.feature_dim == dim
    images = np.random.default_rng(0).integers(0, 256, size=(9, 32, 32, 3), dtype=np.uint8)
    features, probs = backbone.features_and_probabilities(images)
    assert features.shape == (9, dim) and probs.shape == (9, 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    # The same model, called directly, computes the same features: the loader adds nothing.
    model = keras.saving.load_model(cifar_classifier.model_path(cache), safe_mode=True)
    direct = keras.Model(model.input, model.get_layer("features").output)(images, training=False)
    np.testing.assert_allclose(features, np.asarray(direct), rtol=1e-4, atol=1e-5)


def test_the_backbone_says_which_file_made_its_values(trained):
    cache, _, meta = trained
    path = cifar_classifier.model_path(cache)
    identity = load_backbone("cifar10_classifier", cache_dir=cache).identity
    assert identity.md5 == hashlib.md5(path.read_bytes()).hexdigest()
    assert identity.test_accuracy == meta["test_accuracy"]
    assert identity.settings == f"channels=2, epochs=1, train_images={meta['n_train']}, test_images=" \
                                f"{meta['n_test']}, seed=0"
    assert identity.params()["eval_backbone_test_acc"] == f"{meta['test_accuracy']:.4f}"
    # One epoch on 128 images is far below the floor: every value it makes carries the warning.
    assert meta["test_accuracy"] < MIN_TEST_ACCURACY and "below the 80% floor" in identity.warning
    # A file written before the parameter was renamed (its .json says "width") reads the same.
    legacy = {k: v for k, v in meta.items() if k != "channels"} | {"width": 2}
    assert cifar_classifier.identity(path, legacy) == identity


def test_batch_size_size_and_channels_do_not_change_what_a_backbone_sees(trained):
    path = cifar_classifier.model_path(trained[0])
    one = cifar_classifier.CifarClassifierBackbone(path, batch_size=1, jit_compile=False)
    many = cifar_classifier.CifarClassifierBackbone(path, batch_size=4, jit_compile=False)
    images = np.random.default_rng(1).integers(0, 256, size=(9, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(one.features(images), many.features(images), rtol=1e-5, atol=1e-5)
    # 64x64 images are area-averaged to 32x32: a 2x2 block-replicated image maps back exactly.
    np.testing.assert_allclose(many.features(images.repeat(2, 1).repeat(2, 2)), many.features(images),
                               rtol=1e-5, atol=1e-5)
    gray = images[..., :1]
    np.testing.assert_array_equal(many.features(gray), many.features(np.repeat(gray, 3, -1)))


def test_augment_crops_and_flips_within_the_padded_image():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(64, 32, 32, 3), dtype=np.uint8)
    out = cifar_classifier.augment(images, rng)
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    seen = set()
    for o, p in zip(out, padded):
        found = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                 if np.array_equal(o, (p[dy:dy + 32, dx:dx + 32, :][:, ::-1] if flip else p[dy:dy + 32, dx:dx + 32]))]
        assert found, "an augmented image is no crop of its padded original"
        seen.add(found[0])
    assert len({s[2] for s in seen}) == 2 and len({s[:2] for s in seen}) > 20


def test_a_machine_without_a_backbone_trains_the_offline_one_once_announced(trained, tmp_path, monkeypatch):
    """Evaluation is on by default: the first run on a machine with no backbone trains the offline
    classifier (announced first), later runs find it; an Inception graph or `--backbone inception` skips it."""
    from harness.measure import backbone_training

    cache = tmp_path / "cache"
    calls, lines = [], []

    def fake_training(cache_dir=None, tracking_uri=None, log=print):  # the real one: tested above, tiny
        calls.append(cache_dir)
        model = cifar_classifier.model_path(trained[0])
        cifar_classifier.model_dir(cache_dir).mkdir(parents=True, exist_ok=True)
        for path in (model, model.with_suffix(".json")):
            (cifar_classifier.model_dir(cache_dir) / path.name).write_bytes(path.read_bytes())

    monkeypatch.setattr(backbone_training, "train_backbone", fake_training)
    backbone_training.ensure_backbone("auto", cache_dir=cache, log=lines.append)
    assert calls == [cache] and "training the offline CIFAR-10 classifier once" in lines[0]
    assert "--eval-every 0" in lines[0]  # how to skip it
    backbone_training.ensure_backbone("auto", cache_dir=cache, log=lines.append)
    backbone_training.ensure_backbone("cifar10_classifier", cache_dir=cache, log=lines.append)
    assert calls == [cache] and len(lines) == 1  # cached: found, not trained again
    assert load_backbone("auto", cache_dir=cache).name.startswith("cifar10_classifier")
    backbone_training.ensure_backbone("inception", cache_dir=tmp_path / "other", log=lines.append)
    assert calls == [cache]  # Inception is load_backbone's to find or refuse
