"""Every preset and every grammar combination builds and takes a training step."""

from __future__ import annotations

import re

import numpy as np
import pytest

from harness.errors import ConfigError
from variants import AXES, GRAMMAR_HELP, PRESETS, TOKENS, VariantSpec, canonical_name, combinations, resolve

GRAMMAR_NAMES = combinations()


def _tokens(axis):
    """The tokens of ``axis``, read from the grammar's table."""
    return [token for token, (a, _) in TOKENS.items() if a == axis]


def test_grammar_names_cover_every_axis_combination():
    specs = [resolve(name) for name in GRAMMAR_NAMES]
    seen = {tuple(s.axes().values()) for s in specs}
    assert len(seen) == np.prod([len(v) for v in AXES.values()]) == len(GRAMMAR_NAMES)
    for spec, name in zip(specs, GRAMMAR_NAMES):
        assert canonical_name(spec) == name


@pytest.mark.parametrize("name, expected", [
    ("bn_kernel4", {"batchnorm": "both", "kernel": 4, "dropout": "head", "leaky_relu": "layer", "d_update": "split"}),
    ("nobn_kernel3", {"batchnorm": "none", "kernel": 3}),
    ("bn_kernel4_inline_mixed", {"batchnorm": "both", "kernel": 4, "leaky_relu": "inline", "d_update": "mixed"}),
    ("kernel4_dropblocks", {"batchnorm": "none", "kernel": 4, "dropout": "blocks"}),
    ("bng_k3", {"batchnorm": "generator", "kernel": 3}),
    ("cifar_bn_mixed", {"batchnorm": "generator", "d_update": "mixed", "dropout": "none"}),
    ("bn_kernel4_relu", {"batchnorm": "both", "kernel": 4, "g_activation": "relu", "leaky_relu": "layer"}),
    ("relu_inline", {"g_activation": "relu", "leaky_relu": "inline", "batchnorm": "none"}),
    ("ugto_dcgan64_leaky", {"g_activation": "leaky_relu", "kernel": 4, "d_update": "mixed"}),
    ("ugto_dcgan64_bn_k3", {"batchnorm": "both", "kernel": 3, "g_activation": "relu"}),
])
def test_names_resolve_to_axes(name, expected):
    spec = resolve(name)
    assert {k: spec.axes()[k] for k in expected} == expected
    assert spec.name == name


def test_grammar_keeps_the_baseline_family():
    spec = resolve("bn_kernel4")
    base = PRESETS["animals_baseline"]
    assert (spec.g_filters, spec.d_blocks, spec.g_lr) == (base.g_filters, base.d_blocks, base.g_lr)
    assert resolve("cifar_bn_mixed").g_filters == PRESETS["cifar_bn"].g_filters


@pytest.mark.parametrize("name, fragment", [
    ("bn_kernal4", "did you mean 'bn_kernel4'"),
    ("animal_baseline", "did you mean 'animals_baseline'"),
    ("bn_nobn", "sets batchnorm twice"),
    ("kernel4_kernel4", "sets kernel twice"),
    ("", "empty variant name"),
])
def test_bad_names_say_what_is_valid(name, fragment):
    with pytest.raises(ConfigError) as err:
        resolve(name)
    message = str(err.value)
    assert fragment.lower() in message.lower()
    if "twice" not in fragment:
        assert "animals_baseline" in message and "kernel4" in message


def test_spec_replace_is_strict():
    spec = resolve("bn_kernel4")
    with pytest.raises(ConfigError, match="unknown variant field"):
        spec.replace(g_learning_rate=1e-3)
    with pytest.raises(ConfigError, match="takes a float"):
        spec.replace(g_lr="fast")
    with pytest.raises(ConfigError, match="g_lr"):
        spec.replace(g_lr=-1e-3)
    assert spec.replace(g_lr=1e-3).g_lr == 1e-3


def test_tokens_table_covers_every_axis_value():
    covered = {(axis, value) for axis, value in TOKENS.values()}
    assert covered == {(axis, value) for axis, values in AXES.items() for value in values}


def test_grammar_help_lists_every_token_by_axis():
    # The help once stopped at the first blank line of the docstring, before the table.
    rows = {line.split()[0]: line for line in GRAMMAR_HELP.splitlines() if line.startswith("    ")}
    assert set(rows) >= set(AXES), f"axes missing from the help's table: {set(AXES) - set(rows)}"
    for axis in AXES:
        for token in _tokens(axis):
            assert re.search(rf"\b{token}\b", rows[axis]), f"{token!r} missing from the {axis} row"
    assert "Examples:" in GRAMMAR_HELP


def test_combinations_are_canonical_one_token_per_axis():
    assert len(GRAMMAR_NAMES) == len(set(GRAMMAR_NAMES)) == np.prod([len(v) for v in AXES.values()])
    for name in GRAMMAR_NAMES:
        tokens = name.split("_")
        assert [TOKENS[t][0] for t in tokens] == list(AXES)
    # The aliases (k3, k4) are accepted but never canonical.
    assert not {"k3", "k4"} & {t for name in GRAMMAR_NAMES for t in name.split("_")}


def test_preset_values_on_the_g_activation_axis():
    assert {name: spec.g_activation for name, spec in PRESETS.items()} == {
        "animals_baseline": "leaky_relu", "cifar_bn": "leaky_relu", "cars_bn_k4": "leaky_relu",
        "mnist_tutorial": "leaky_relu", "ugto_dcgan64": "relu",
    }
    # cifar_bn alone has ReLU after its Dense and LeakyReLU after its convolutions.
    assert {name: spec.dense_activation for name, spec in PRESETS.items()} == {
        "animals_baseline": "leaky_relu", "cifar_bn": "relu", "cars_bn_k4": "leaky_relu",
        "mnist_tutorial": "leaky_relu", "ugto_dcgan64": "relu",
    }
    assert resolve("cifar_bn_relu").dense_activation == "relu"
    assert resolve("cifar_bn_leaky") == PRESETS["cifar_bn"].replace(name="cifar_bn_leaky")


def test_g_dense_activation_is_checked_and_logged_as_built():
    with pytest.raises(ConfigError, match="g_dense_activation='gelu'"):
        VariantSpec(name="x", g_dense_activation="gelu")
    assert PRESETS["cifar_bn"].replace(g_dense_activation=None).dense_activation == "leaky_relu"
    # Params say the function the network has (as runs did before the axis existed).
    assert PRESETS["animals_baseline"].to_params()["g_dense_activation"] == "leaky_relu"
    assert resolve("relu").to_params()["g_dense_activation"] == "relu"
    assert PRESETS["cifar_bn"].to_params()["g_dense_activation"] == "relu"
    assert resolve("relu").to_params()["g_activation"] == "relu"


# --- building and one step -------------------------------------------------------------
def _step(spec, image_size=None, channels=None):
    """Build the GAN at tiny width and run one eager training step on random images."""
    from harness.train.gan import GAN

    spec = spec.for_image(image_size or spec.image_size, channels or spec.channels).scaled(0.0625)
    gan = GAN(spec, seed=1)
    gan.compile(run_eagerly=True)
    real = np.random.default_rng(0).integers(0, 256, (4, *spec.image_shape), dtype=np.uint8)
    before = [w.numpy().copy() for w in gan.generator.trainable_weights]
    logs = gan.train_step(real)
    z = np.random.default_rng(1).standard_normal((3, spec.latent_dim)).astype(np.float32)
    images = gan.sample(z).numpy()
    assert images.shape == (3, *spec.image_shape)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert gan.discriminator(images).shape == (3, 1)
    assert all(np.isfinite(float(v)) for v in logs.values())
    after = gan.generator.trainable_weights
    assert any(not np.array_equal(b, a.numpy()) for b, a in zip(before, after)), "G did not update"
    return gan


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_and_steps(name):
    _step(PRESETS[name])


def _kinds(model, *kinds):
    return [type(layer).__name__ for layer in model.layers if type(layer).__name__ in kinds]


def _convs(model, kind):
    return [layer for layer in model.layers if type(layer).__name__ == kind and layer.name != "image"]


@pytest.mark.parametrize("name", GRAMMAR_NAMES)
def test_every_grammar_combination_builds_and_steps(name):
    gan = _step(resolve(name))
    layers = [type(layer).__name__ for layer in gan.discriminator.layers + gan.generator.layers]
    spec = gan.spec
    assert ("BatchNormalization" in layers) == (spec.batchnorm != "none")
    assert ("Dropout" in layers) == (spec.dropout != "none")
    kernels = {layer.kernel_size[0] for layer in gan.generator.layers if type(layer).__name__ == "Conv2DTranspose"}
    assert kernels == {spec.kernel}
    # g_activation picks G's function; leaky_relu its form (and D's) in both networks.
    g_layer = {"leaky_relu": "LeakyReLU", "relu": "ReLU"}[spec.g_activation]
    hidden, d_convs = _convs(gan.generator, "Conv2DTranspose"), _convs(gan.discriminator, "Conv2D")
    if spec.leaky_relu == "layer":
        assert _kinds(gan.generator, "ReLU", "LeakyReLU") == [g_layer] * (1 + len(hidden))
        assert _kinds(gan.discriminator, "ReLU", "LeakyReLU") == ["LeakyReLU"] * len(d_convs)
        assert {layer.activation.__name__ for layer in hidden + d_convs} == {"linear"}
    else:
        # Only the Dense projection keeps a layer: the Reshape separates it from the Dense.
        assert _kinds(gan.generator, "ReLU", "LeakyReLU") == [g_layer]
        assert _kinds(gan.discriminator, "ReLU", "LeakyReLU") == []
        assert {layer.activation.__name__ for layer in hidden} == {spec.g_activation}
        assert {layer.activation.__name__ for layer in d_convs} == {"leaky_relu"}


@pytest.mark.parametrize("name", ["bn_kernel4", "bng_inline", "bnd_dropblocks_mixed", *PRESETS])
def test_g_activation_token_changes_only_the_function(name):
    """``_relu`` against ``_leaky``: same layers, same BatchNorm places, D untouched."""
    from variants.builders import build_discriminator, build_generator

    def structure(model):
        return [(type(layer).__name__, getattr(layer, "activation", None) and layer.activation.__name__)
                for layer in model.layers]

    relu, leaky = (resolve(f"{name}_{token}").scaled(0.0625) for token in ("relu", "leaky"))
    swap = {("LeakyReLU", None): ("ReLU", None), ("Conv2DTranspose", "leaky_relu"): ("Conv2DTranspose", "relu")}
    expected = [swap.get(kind, kind) for kind in structure(build_generator(leaky))]
    assert structure(build_generator(relu)) == expected
    assert structure(build_discriminator(relu)) == structure(build_discriminator(leaky))


@pytest.mark.parametrize("size, channels", [(28, 1), (64, 3), (28, 3)])
def test_variants_adapt_to_image_size(size, channels):
    for name in ("animals_baseline", "bn_kernel4", "mnist_tutorial"):
        _step(PRESETS.get(name) or resolve(name), size, channels)


def test_ugto_dcgan64_adapts_to_cifar_size_and_keeps_64():
    native = PRESETS["ugto_dcgan64"]
    assert native.image_size == 64 and native.for_image(64, 3) is native
    small = native.for_image(32, 3)
    # The 8x8 start is kept, so the last (widest) up-sampling block goes.
    assert (small.base, small.g_filters) == (8, (128, 256))
    assert small.d_blocks == native.d_blocks and small.g_activation == "relu"
    gan = _step(small)
    assert gan.generator.output_shape == (None, 32, 32, 3)


def test_preset_architectures_match_the_notebooks():
    from variants.builders import build_discriminator, build_generator

    def convs(model, kind):
        return [(l.filters, l.kernel_size[0], l.strides[0]) for l in model.layers if type(l).__name__ == kind]

    g = build_generator(PRESETS["animals_baseline"])
    assert convs(g, "Conv2DTranspose") == [(128, 3, 2)] * 3
    assert convs(g, "Conv2D") == [(3, 3, 1)]
    assert g.layers[1].units == 4 * 4 * 256
    d = build_discriminator(PRESETS["animals_baseline"])
    assert convs(d, "Conv2D") == [(64, 3, 1), (128, 3, 2), (128, 3, 2), (256, 3, 2)]
    assert [type(l).__name__ for l in d.layers[-3:]] == ["Flatten", "Dropout", "Dense"]

    g = build_generator(PRESETS["cifar_bn"])
    assert g.layers[1].units == 8 * 8 * 256
    assert convs(g, "Conv2DTranspose") == [(128, 4, 2), (64, 4, 2)]
    kinds = [type(l).__name__ for l in g.layers]
    # BatchNorm after the activation, as published.
    i = kinds.index("Conv2DTranspose")
    assert kinds[i:i + 3] == ["Conv2DTranspose", "LeakyReLU", "BatchNormalization"]
    assert [l.momentum for l in g.layers if type(l).__name__ == "BatchNormalization"] == [0.8] * 3

    g = build_generator(PRESETS["mnist_tutorial"])
    assert g.output_shape == (None, 28, 28, 1)
    d = build_discriminator(PRESETS["mnist_tutorial"])
    assert convs(d, "Conv2D") == [(64, 5, 2), (64, 3, 2)]
    assert sum(type(l).__name__ == "Dropout" for l in d.layers) == 2

    spec = PRESETS["ugto_dcgan64"]
    g = build_generator(spec)
    assert g.input_shape == (None, 128) and g.output_shape == (None, 64, 64, 3)
    assert g.layers[1].units == 8 * 8 * 128
    assert convs(g, "Conv2DTranspose") == [(128, 4, 2), (256, 4, 2), (512, 4, 2)]
    assert convs(g, "Conv2D") == [(3, 5, 1)] and g.layers[-1].activation.__name__ == "tanh"
    kinds = [type(l).__name__ for l in g.layers]
    # ReLU after the Dense and after each transposed convolution; no BatchNorm.
    assert kinds.count("ReLU") == 4 and "LeakyReLU" not in kinds and "BatchNormalization" not in kinds
    d = build_discriminator(spec)
    assert convs(d, "Conv2D") == [(64, 4, 2), (128, 4, 2), (128, 4, 2)]
    assert [type(l).__name__ for l in d.layers].count("LeakyReLU") == 3
    assert [type(l).__name__ for l in d.layers[-3:]] == ["Flatten", "Dropout", "Dense"]
    assert d.layers[-2].rate == 0.2 and "BatchNormalization" not in [type(l).__name__ for l in d.layers]
    assert (spec.g_lr, spec.d_lr, spec.g_beta_1, spec.d_beta_1, spec.d_update) == (1e-4, 1e-4, 0.9, 0.9, "mixed")
