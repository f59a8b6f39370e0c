"""Generator files from outside the harness: .h5 and .keras load and check, bad files fail with
one message naming the file, `sample --generator` draws from them and `eval --generator` scores
them into a new MLflow run tagged external."""

from __future__ import annotations

import json
import zipfile

import h5py
import keras
import numpy as np
import pytest
from PIL import Image

from harness import cli
from harness.errors import ConfigError
from harness.generators import files as external
from harness.store import tracking
from variants import resolve
from variants.builders import build_discriminator, build_generator

SPEC = resolve("animals_baseline").scaled(0.05)


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(0)
    return build_generator(SPEC)


@pytest.fixture(scope="module")
def files(generator, tmp_path_factory):
    """The tiny generator saved as .h5 and as .keras."""
    folder = tmp_path_factory.mktemp("generators")
    for suffix in (".h5", ".keras"):
        generator.save(folder / f"g{suffix}")
    return folder


def noise(n: int = 4) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((n, SPEC.latent_dim)).astype(np.float32)


def error_of(path, **kwargs) -> str:
    with pytest.raises(ConfigError) as caught:
        external.load(path, **kwargs)
    return str(caught.value)


# --- loading ------------------------------------------------------------------------------
@pytest.mark.parametrize("name, fmt", [("g.h5", "h5"), ("g.keras", "keras")])
def test_a_saved_generator_loads_with_its_shapes_and_the_same_images(files, generator, name, fmt):
    loaded = external.load(files / name)
    assert (loaded.format, loaded.latent_dim, loaded.image_size, loaded.channels) == (fmt, 100, 32, 3)
    assert loaded.output_range == "tanh"  # the harness's own convention: no rescaling
    np.testing.assert_array_equal(loaded.model(noise()).numpy(), generator(noise()).numpy())
    assert loaded.params()["external_md5"] == loaded.md5 and len(loaded.md5) == 32


def notebook_generator(latent: int = 10, output: str = "sigmoid") -> keras.Model:
    """The notebooks' shape of generator: Dense, LeakyReLU, Reshape, three ConvT, Conv2D."""
    from keras import layers

    stack = [keras.Input((latent,)), layers.Dense(4 * 4 * 8, name="dense"),
             layers.LeakyReLU(0.2, name="leaky_re_lu"), layers.Reshape((4, 4, 8), name="reshape")]
    for i in range(3):
        stack += [layers.Conv2DTranspose(8, 4, strides=2, padding="same", name=f"conv2d_transpose_{i}"),
                  layers.LeakyReLU(0.2, name=f"leaky_re_lu_{i + 1}")]
    stack.append(layers.Conv2D(3, 3, padding="same", activation=output, name="conv2d"))
    return keras.Sequential(stack)


def keras2_config(model: keras.Model) -> dict:
    """``model``'s configuration as tf.keras 2.x writes it into an .h5 (``groups`` on ConvT, ``alpha``)."""
    def conv(layer, kind):
        config = {"name": layer.name, "trainable": True, "dtype": "float32", "filters": layer.filters,
                  "kernel_size": list(layer.kernel_size), "strides": list(layer.strides), "padding": "same",
                  "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
                  "activation": layer.activation.__name__, "use_bias": True,
                  "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
                  "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
                  "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
                  "bias_constraint": None}
        if kind == "Conv2DTranspose":
            config["output_padding"] = None
        return {"class_name": kind, "config": config}

    latent = model.input_shape[-1]
    layers = [{"class_name": "InputLayer", "config": {"batch_input_shape": [None, latent], "dtype": "float32",
                                                      "sparse": False, "ragged": False, "name": "dense_input"}}]
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Dense":
            layers.append({"class_name": "Dense", "config": {
                "name": layer.name, "trainable": True, "dtype": "float32", "batch_input_shape": [None, latent],
                "units": layer.units, "activation": "linear", "use_bias": True,
                "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
                "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
                "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
                "bias_constraint": None}})
        elif kind == "LeakyReLU":
            layers.append({"class_name": "LeakyReLU", "config": {"name": layer.name, "trainable": True,
                                                                 "dtype": "float32", "alpha": 0.2}})
        elif kind == "Reshape":
            layers.append({"class_name": "Reshape", "config": {"name": layer.name, "trainable": True,
                                                               "dtype": "float32",
                                                               "target_shape": list(layer.target_shape)}})
        else:
            layers.append(conv(layer, kind))
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}


def test_a_tf_keras_2_notebook_h5_with_a_sigmoid_output_loads_and_is_read_in_the_tanh_range(tmp_path):
    # tf.keras 2.x writes groups=1 into every Conv2DTranspose, which Keras 3 refuses as such.
    keras.utils.set_random_seed(0)
    model = notebook_generator()
    path = tmp_path / "generator.h5"
    model.save(path)
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = json.dumps(keras2_config(model)).encode()
        f.attrs["keras_version"] = "2.12.0"
    before = path.read_bytes()
    loaded = external.load(path)
    assert loaded.output_range == "sigmoid" and loaded.latent_dim == 10
    z = np.random.default_rng(0).standard_normal((3, 10)).astype(np.float32)
    images = loaded.model(z).numpy()
    np.testing.assert_allclose(images, 2 * model(z).numpy() - 1, atol=1e-6)  # [0, 1] read as [-1, 1]
    assert images.min() >= -1 and images.max() <= 1
    assert path.read_bytes() == before  # fixed in a copy, never in place


def test_an_output_of_unknown_range_needs_output_range(tmp_path):
    model = notebook_generator(output="linear")
    model.save(tmp_path / "linear.keras")
    assert "pass --output-range tanh" in error_of(tmp_path / "linear.keras")
    assert external.load(tmp_path / "linear.keras", output_range="tanh").output_range == "tanh"


# --- refusals: one message naming the file and what is wrong ------------------------------------
def test_a_discriminator_is_not_a_generator(tmp_path):
    build_discriminator(SPEC).save(tmp_path / "d.keras")
    message = error_of(tmp_path / "d.keras")
    assert "d.keras" in message and "not a generator" in message
    assert "its input is (None, 32, 32, 3), not (None, latent)" in message
    assert "looks like a discriminator" in message


def test_images_of_an_unsupported_size_are_named(tmp_path):
    z = keras.Input((8,))
    images = keras.layers.Reshape((16, 16, 3))(keras.layers.Dense(16 * 16 * 3, activation="tanh")(z))
    keras.Model(z, images).save(tmp_path / "small.h5")
    assert "its images are 16x16, not one of 28x28, 32x32, 64x64" in error_of(tmp_path / "small.h5")


@pytest.mark.parametrize("content, expected", [
    (b"", "is empty"),
    (b"this is not a model at all", "is not a Keras model file"),
    (b"\x89HDF\r\n\x1a\n" + b"\x00" * 100, "is damaged"),
    (b"PK\x03\x04" + b"\x00" * 100, "is damaged"),
])
def test_garbage_and_damaged_files_are_refused_without_a_traceback(tmp_path, content, expected):
    path = tmp_path / ("g.keras" if content.startswith(b"PK") else "g.h5")
    path.write_bytes(content)
    message = error_of(path)
    assert expected in message and str(path) in message


def test_a_file_cut_short_is_refused(files, tmp_path):
    path = tmp_path / "cut.h5"
    path.write_bytes((files / "g.h5").read_bytes()[:4000])
    assert "cut.h5" in error_of(path)


def test_the_wrong_suffix_says_to_rename(files, tmp_path):
    path = tmp_path / "g.keras"
    path.write_bytes((files / "g.h5").read_bytes())
    assert "is an HDF5 file; Keras reads it only under a name ending in .h5" in error_of(path)


def test_weights_only_and_missing_files(generator, tmp_path):
    generator.save_weights(tmp_path / "g.weights.h5")
    assert "an HDF5 file without a model in it" in error_of(tmp_path / "g.weights.h5")
    assert "does not exist" in error_of(tmp_path / "nothing.h5")
    assert "is a folder" in error_of(tmp_path)
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("readme.txt", "not a model")
    assert "without a config.json" in error_of(tmp_path / "other.keras")


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_lambda_layers_are_refused(tmp_path, suffix):
    z = keras.Input((8,))
    x = keras.layers.Lambda(lambda t: t * 2.0)(keras.layers.Dense(28 * 28)(z))
    keras.Model(z, keras.layers.Reshape((28, 28, 1))(x)).save(tmp_path / f"lambda{suffix}")
    assert "has a Lambda layer" in error_of(tmp_path / f"lambda{suffix}")


# --- the commands -----------------------------------------------------------------------------
def test_sample_draws_from_a_file_like_from_a_logged_model(files, generator, tmp_path, capsys):
    from harness.store import generator_model as serving

    out = tmp_path / "grid.png"
    assert cli.main(["sample", "--generator", str(files / "g.h5"), "--n", "2", "--cols", "2",
                     "--seed", "5", "--out", str(out), "--out-dir", str(tmp_path / "singles")]) == 0
    expected = serving.generate(generator, serving.seed_noise([5, 6], 100))
    single = np.asarray(Image.open(tmp_path / "singles" / "seed_000006.png"))
    np.testing.assert_array_equal(single, expected[1])
    assert out.exists() and "g.h5" in capsys.readouterr().out


def test_sample_refuses_a_file_and_a_run_together(files, capsys):
    assert cli.main(["sample", "--generator", str(files / "g.h5"), "--run-id", "abc"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_eval_needs_a_run_or_a_file_and_a_dataset(files, capsys):
    assert cli.main(["eval"]) == 2
    assert "--run-id ID" in capsys.readouterr().err
    assert cli.main(["eval", "--generator", str(files / "g.keras")]) == 2
    assert "--generator needs --dataset" in capsys.readouterr().err


def test_eval_scores_a_file_into_a_new_external_run(files, tiny_backbone, tracking_uri, data_root, capsys):
    code = cli.main(["eval", "--generator", str(files / "g.keras"), "--dataset", "horses",
                     "--eval-samples", "20", "--backbone", "cifar10_classifier", "--tracking-uri", tracking_uri])
    assert code == 0, capsys.readouterr().err
    runs = tracking.find_runs(tracking_uri, "horses")
    assert len(runs) == 1
    run = runs[0]
    assert run.status == "FINISHED"
    assert run.tags["source"] == "external" and "variant" not in run.tags
    params = run.params
    assert params["external_file"] == "g.keras" and params["external_md5"] == external.load(files / "g.keras").md5
    assert params["eval_n_fake"] == "20" and params["eval_backbone"].startswith("cifar10_classifier")
    assert not {"epochs", "batch_size", "variant", "seed"} & set(params)  # no training params
    assert {"fid", "kid", "is"} <= set(run.metrics)
    assert tracking.list_artifacts(tracking_uri, run.run_id, "external") == ["external/g.keras"]


def test_eval_refuses_a_generator_of_other_channels(tmp_path, cifar10_root, capsys):
    gray = build_generator(resolve("mnist_tutorial").scaled(0.05))
    gray.save(tmp_path / "digits.keras")
    assert cli.main(["eval", "--generator", str(tmp_path / "digits.keras"), "--dataset", "horses"]) == 2
    err = capsys.readouterr().err
    assert "makes 1-channel images" in err and "3-channel" in err
