"""The faster CPU convolution computes exactly what Conv2D computes."""

import os
import types

import numpy as np
import pytest
import tensorflow as tf

from harness.train.kernels import _subpixel_call, accelerate, eligible, eligible_transpose, tap_convolution
from variants import resolve
from variants.builders import build_generator


@pytest.mark.parametrize("kernel,c_in,c_out,size", [(3, 16, 3, 8), (4, 16, 3, 8), (5, 8, 1, 7), (1, 8, 3, 6), (2, 4, 8, 5)])
def test_tap_convolution_matches_conv2d_and_its_gradients(kernel, c_in, c_out, size):
    rng = np.random.default_rng(kernel * 100 + c_out)
    x = tf.constant(rng.standard_normal((2, size, size, c_in)), tf.float32)
    w = tf.constant(rng.standard_normal((kernel, kernel, c_in, c_out)), tf.float32)
    dy = tf.constant(rng.standard_normal((2, size, size, c_out)), tf.float32)

    def with_grads(conv):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = conv(x, w)
            loss = tf.reduce_sum(y * dy)
        return [y, *tape.gradient(loss, [x, w])]

    ours = with_grads(tap_convolution)
    reference = with_grads(lambda a, b: tf.nn.conv2d(a, b, strides=1, padding="SAME"))
    for got, want, what in zip(ours, reference, ("output", "input gradient", "kernel gradient")):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4, err_msg=what)


def test_accelerated_generator_is_unchanged_in_output_and_saved_form(tmp_path):
    import keras

    spec = resolve("bn_kernel4").scaled(0.125)
    plain, fast = build_generator(spec), build_generator(spec)
    fast.set_weights(plain.get_weights())
    names = [layer.name for layer in fast.layers if type(layer).__name__ in ("Conv2DTranspose", "BatchNormalization")]
    assert accelerate(fast, force=True) == [*names, "image"] and len(names) == 6
    z = np.random.default_rng(0).standard_normal((4, spec.latent_dim)).astype(np.float32)
    np.testing.assert_allclose(fast(z).numpy(), plain(z).numpy(), atol=1e-5)

    fast.save(tmp_path / "g.keras")
    loaded = keras.saving.load_model(tmp_path / "g.keras", compile=False, safe_mode=True)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in plain.layers]
    assert not any("call" in vars(layer) or "convolution_op" in vars(layer) for layer in loaded.layers)
    np.testing.assert_allclose(loaded(z).numpy(), plain(z).numpy(), atol=1e-5)


def test_only_stride_one_same_convolutions_with_few_filters_are_eligible():
    from keras import layers

    inputs = layers.Input((8, 8, 4))
    for layer, expected in [
        (layers.Conv2D(3, 3, padding="same"), True),
        (layers.Conv2D(64, 3, padding="same"), False),
        (layers.Conv2D(3, 3, strides=2, padding="same"), False),
        (layers.Conv2D(3, 3, padding="valid"), False),
        (layers.Conv2DTranspose(3, 3, padding="same"), False),
    ]:
        layer(inputs)
        assert eligible(layer) is expected, layer
    for kernel, expected in [(4, True), (3, False)]:
        layer = layers.Conv2DTranspose(3, kernel, strides=2, padding="same")
        layer(inputs)
        assert eligible_transpose(layer) is expected


@pytest.mark.parametrize("kernel,c_in,c_out,size", [(3, 8, 4, 4), (4, 8, 4, 4), (5, 4, 4, 3), (2, 4, 6, 5), (3, 4, 3, 1)])
def test_subpixel_transpose_matches_conv2d_transpose_and_its_gradients(kernel, c_in, c_out, size):
    from keras import layers

    rng = np.random.default_rng(kernel * 10 + size)
    x = tf.constant(rng.standard_normal((2, size, size, c_in)), tf.float32)
    plain = layers.Conv2DTranspose(c_out, kernel, strides=2, padding="same", activation="tanh")
    fast = layers.Conv2DTranspose(c_out, kernel, strides=2, padding="same", activation="tanh")
    plain(x), fast(x)
    fast.set_weights([w + rng.standard_normal(w.shape).astype(np.float32) for w in plain.get_weights()])
    plain.set_weights(fast.get_weights())
    fast.call = types.MethodType(_subpixel_call, fast)
    dy = tf.constant(rng.standard_normal((2, 2 * size, 2 * size, c_out)), tf.float32)

    def with_grads(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * dy)
        return [layer(x), *tape.gradient(loss, [x, *layer.trainable_variables])]

    for got, want, what in zip(with_grads(fast), with_grads(plain), ("output", "input", "kernel", "bias")):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4, err_msg=what)


def test_the_gan_trains_with_the_faster_formulations_on_cpu(monkeypatch):
    from harness.train.gan import GAN

    monkeypatch.setenv("HARNESS_CPU_KERNELS", "fast")  # every eligible layer, whatever this CPU prefers
    gan = GAN(resolve("bn_kernel4").scaled(0.125))
    swapped = [layer.name for layer in gan.generator.layers if {"call", "convolution_op"} & set(vars(layer))]
    # three transposed convolutions, their BatchNorms and the output convolution; and four LeakyReLUs
    assert len(swapped) == 11 and sum(name.startswith("leaky_re_lu") for name in swapped) == 4


@pytest.mark.parametrize("momentum,scale,center", [(0.99, True, True), (0.8, True, True), (0.9, False, False)])
def test_fused_batch_norm_trains_and_infers_exactly_like_keras(momentum, scale, center):
    import keras

    def model():
        inputs = keras.Input((6, 6, 5))
        return keras.Model(inputs, keras.layers.BatchNormalization(momentum=momentum, scale=scale,
                                                                   center=center)(inputs))

    stock, fused = model(), model()
    fused.set_weights(stock.get_weights())
    assert len(accelerate(fused, force=True)) == 1
    rng = np.random.default_rng(7)
    dy = tf.constant(rng.standard_normal((4, 6, 6, 5)), tf.float32)
    for step in range(3):  # the moving statistics follow Keras's update, step after step
        x = tf.constant(rng.standard_normal((4, 6, 6, 5)) * (step + 2) + step, tf.float32)
        results = []
        for net in (stock, fused):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = net(x, training=True)
                loss = tf.reduce_sum(y * dy)
            results.append([y, *tape.gradient(loss, [x, *net.trainable_variables])])
        for got, want in zip(results[1], results[0]):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)
        for got, want in zip(fused.get_weights(), stock.get_weights()):  # gamma, beta, moving mean/var
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused(x, training=False).numpy(), stock(x, training=False).numpy(), atol=1e-5)


def test_each_convolution_shape_is_timed_once_per_machine_and_the_faster_kept(tmp_path, monkeypatch):
    import harness.train.kernels as kernels
    from harness.errors import ConfigError
    from harness.train import measured

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(measured, "_memory", {})
    timed = []

    def seconds(layer, call, inputs, repeats=3):  # the reformulation is timed first, then the stock call
        timed.append(layer.name)
        return 1.0 if len(timed) % 2 else 2.0

    monkeypatch.setattr(kernels, "_seconds", seconds)
    spec = resolve("bn_kernel4").scaled(0.125)
    first = accelerate(build_generator(spec))
    assert len(timed) == 2 * 4  # three transposed convolutions and the output convolution, both ways
    assert len(first) == 7  # the faster (reformulated) ones and the three BatchNorms
    monkeypatch.setattr(measured, "_memory", {})  # a new process: the choices come from the cache file
    assert len(accelerate(build_generator(spec))) == 7 and len(timed) == 8
    assert (tmp_path / "kernels" / "choices.json").is_file()

    monkeypatch.setenv("HARNESS_CPU_KERNELS", "stock")
    assert len(accelerate(build_generator(spec))) == 3  # BatchNorm only
    monkeypatch.setenv("HARNESS_CPU_KERNELS", "quick")
    with pytest.raises(ConfigError, match="HARNESS_CPU_KERNELS='quick' must be one of auto, fast, stock"):
        accelerate(build_generator(spec))


def test_a_bfloat16_transposed_convolution_sums_its_bias_gradient_in_float32():
    """TensorFlow's CPU BiasAddGrad accumulates bfloat16 in bfloat16: over 8,192 positions of
    gradients near 1 its sums stall far below the true ~8,192; the accelerated layer's are the
    float64 sum to bfloat16's rounding."""
    import keras

    image = keras.Input((16, 16, 2))
    layer = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same", dtype="mixed_bfloat16")
    model = keras.Model(image, layer(image))
    assert accelerate(model) == [layer.name]
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((8, 16, 16, 2)), tf.float32)
    dy = rng.uniform(0.5, 1.5, (8, 32, 32, 4))
    with tf.GradientTape() as tape:
        y = model(x)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.constant(dy, tf.float32))
    got = tape.gradient(loss, layer.bias).numpy()
    np.testing.assert_allclose(got, dy.sum(axis=(0, 1, 2)), rtol=2 ** -7)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_leaky_relu_from_its_output_has_the_stock_value_and_gradient(dtype):
    from harness.train.kernels import leaky_relu

    x = tf.constant([[-2.0, -0.5, 0.0, 0.25, 3.0]], dtype)
    dy = tf.constant([[1.0, -2.0, 3.0, 4.0, -5.0]], dtype)
    results = []
    for f in (leaky_relu, lambda v, a: tf.nn.leaky_relu(v, alpha=a)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = f(x, 0.2)
        results.append((y.numpy(), tape.gradient(y, x, output_gradients=dy).numpy()))
    for ours, stock in zip(*results):
        np.testing.assert_array_equal(ours, stock)


@pytest.mark.parametrize("variant", ["animals_baseline", "inline"])
def test_a_training_step_graph_rewrites_without_the_remapper_failing(variant):
    """A LeakyReLU after a convolution, as a layer or inline, made grappler's remapper fail on the whole graph."""
    import subprocess
    import sys

    script = ("import tensorflow as tf\n"
              "from harness.train.gan import GAN\n"
              "from variants import resolve\n"
              f"spec = resolve({variant!r}).scaled(0.125)\n"
              "gan = GAN(spec, seed=0); gan.compile(jit_compile=False)\n"
              "images = tf.zeros((4, *spec.image_shape), tf.uint8)\n"
              "gan.fit(tf.data.Dataset.from_tensors(images).repeat(), epochs=1, steps_per_epoch=1, verbose=0)\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "remapper failed" not in done.stderr


def test_an_accelerated_inline_discriminator_has_the_stock_outputs_and_gradients():
    from variants.builders import build_discriminator

    spec = resolve("inline").scaled(0.125)
    plain, fast = build_discriminator(spec), build_discriminator(spec)
    fast.set_weights(plain.get_weights())
    accelerate(fast)
    assert any("call" in vars(layer) for layer in fast.layers if type(layer).__name__ == "Conv2D")
    x = tf.constant(np.random.default_rng(1).uniform(-1, 1, (4, *spec.image_shape)), tf.float32)
    results = []
    for model in (plain, fast):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = model(x, training=False)
        results.append([y, *tape.gradient(y, [x, *model.trainable_weights])])
    for ours, stock in zip(results[1], results[0]):
        np.testing.assert_allclose(ours.numpy(), stock.numpy(), rtol=1e-5, atol=1e-6)
