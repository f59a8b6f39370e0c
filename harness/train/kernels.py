"""Faster CPU formulations of convolutions TensorFlow's CPU kernels handle badly.

Timed layer by layer at batch 128 on a 2-core AVX2 CPU, most convolutions of
these models run at 80-130 GFLOP/s, but two kinds do not:

- a stride-1 convolution with few output channels (the generator's last
  layer, 128 channels in, 3 out) runs at 4-17 GFLOP/s; its filter gradient
  alone took 226 ms of a ~2 s step. ``tap_convolution`` writes it as one
  matrix product over channels plus a sum of shifted slices (gradients by
  autodiff): +12-23% images/s for the whole animals_baseline step;
- a stride-2 transposed convolution runs its forward pass at 26-58 GFLOP/s.
  ``subpixel_transpose`` computes it as four stride-1 convolutions, one per
  output phase, interleaved by ``depth_to_space``: +9% for the bn_kernel4
  step (kernel 4: four 2x2 phases). With kernel 3 the phases are 2x2, 2x1,
  1x2 and 1x1 and the step was no faster, so odd kernels keep the stock op.

A third is not a convolution: Keras 3's BatchNormalization computes the
batch moments and the normalisation as separate ops, and their gradients as
several more, each a pass over the activation. ``fused_batch_norm_call``
trains with TensorFlow's fused kernel (one pass forward, one back), updating
the moving statistics exactly as Keras does: forward and backward of a
(128, 32, 32, 128) activation took 215 ms as Keras computes it and 61 ms fused.

Under a 16-bit policy (``harness.train.precision``), TensorFlow's CPU
``BiasAddGrad`` sums the bias gradient in bfloat16, which is slow and loses
most of its digits over a large activation; a transposed convolution's bias
(the only one oneDNN does not fuse into its filter gradient) gets a
``reduce_sum`` gradient instead (``bias_add``).

``accelerate(model)`` swaps these into matching layer *instances*: each layer
keeps its class, config and weights, so a saved model is plain Keras and loads
anywhere without this module. It is applied on CPUs only; GPU convolutions
(cuDNN) have no such gap. Tests check outputs and gradients against the stock
layers.
"""

from __future__ import annotations

import os
import time
import types

import keras
import tensorflow as tf

from harness.errors import ConfigError
from harness.train.measured import machine_key, remembered

# Output channels up to which the tap formulation is used (measured: at 3 it is
# ~4x faster than Conv2D's kernels end to end; wide layers are faster as they are).
MAX_TAP_FILTERS = 8
INLINE_LEAKY_SLOPE = 0.2  # keras.activations.leaky_relu's default, what activation="leaky_relu" applies


def tap_convolution(inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """A stride-1, ``same``-padded, channels-last 2-D convolution (no bias).

    ``z = inputs @ kernel`` over channels gives every tap's contribution at
    every pixel at once (one matrix product); the output is the sum, over the
    kh x kw taps, of ``z`` shifted by that tap's offset, with TensorFlow's
    ``same`` padding (the extra row/column of an even kernel goes after).
    """
    kh, kw, c_in, c_out = kernel.shape
    height = inputs.shape[1] if inputs.shape[1] is not None else tf.shape(inputs)[1]
    width = inputs.shape[2] if inputs.shape[2] is not None else tf.shape(inputs)[2]
    top, left = (kh - 1) // 2, (kw - 1) // 2
    per_tap = tf.reshape(tf.transpose(kernel, [2, 0, 1, 3]), [c_in, kh * kw * c_out])
    z = tf.matmul(tf.reshape(inputs, [-1, c_in]), per_tap)
    z = tf.reshape(z, [-1, height, width, kh * kw * c_out])
    z = tf.pad(z, [[0, 0], [top, kh - 1 - top], [left, kw - 1 - left], [0, 0]])
    return _shifted_sum(z, kh, kw, c_out)


def _shifted_sum(z: tf.Tensor, kh: int, kw: int, c_out: int) -> tf.Tensor:
    """``sum over taps (i, j) of z[:, i:i+H, j:j+W, tap's c_out channels]`` (z padded by kh-1, kw-1).

    Autodiff would differentiate each of the kh*kw slices into a zero tensor
    the size of ``z`` and add them (profiled: 51 of ~1,400 ms of summed op
    time in the animals_baseline step); the gradient here writes each tap's
    window once, by padding the output gradient to its offset and
    concatenating the taps along channels.
    """
    height, width = tf.shape(z)[1] - (kh - 1), tf.shape(z)[2] - (kw - 1)

    @tf.custom_gradient
    def shifted_sum(z):
        out = None
        for i in range(kh):
            for j in range(kw):
                first = (i * kw + j) * c_out
                tap = z[:, i:i + height, j:j + width, first:first + c_out]
                out = tap if out is None else out + tap

        def grad(dy):
            return tf.concat([tf.pad(dy, [[0, 0], [i, kh - 1 - i], [j, kw - 1 - j], [0, 0]])
                              for i in range(kh) for j in range(kw)], axis=-1)

        return out, grad

    return shifted_sum(z)


def _phases(kernel: int) -> list[tuple[int, int, int]]:
    """For output parity 0 and 1 of a stride-2 ``same`` transposed convolution of
    one dimension: (its last kernel tap, padding before, padding after).

    The transposed convolution is the gradient of a stride-2 convolution with
    ``pad_before = (kernel - 2) // 2``, so output ``2m + r`` collects input
    ``m + d`` through tap ``t`` whenever ``2d = r + pad_before - t``: every
    other tap, counted down from the last of that parity, at offsets rising
    one by one.
    """
    before = (kernel - 2) // 2
    phases = []
    for r in (0, 1):
        taps = [t for t in range(kernel) if (r + before - t) % 2 == 0]
        offsets = [(r + before - t) // 2 for t in taps]
        phases.append((max(taps), -min(offsets), max(offsets)))
    return phases


def subpixel_transpose(inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """A stride-2, ``same``-padded, channels-last transposed convolution (no bias).

    Each of the four output phases (row and column parity) is a stride-1
    convolution of the input with the taps that reach it; ``depth_to_space``
    interleaves them. Same FLOPs as the transposed convolution, none wasted on
    zeros, but as ordinary convolutions, which TensorFlow's CPU kernels run
    about twice as fast. ``kernel`` is Keras's (kh, kw, out, in) layout.
    """
    phases = []
    for last_row, top, bottom in _phases(kernel.shape[0]):
        for last_col, left, right in _phases(kernel.shape[1]):
            # Every other tap, backwards; (kh', kw', out, in) -> conv2d's (kh', kw', in, out).
            sub = tf.transpose(kernel[last_row::-2, last_col::-2], [0, 1, 3, 2])
            pad = [[0, 0], [top, bottom], [left, right], [0, 0]]
            phases.append(tf.nn.conv2d(inputs, sub, strides=1, padding=pad))
    return tf.nn.depth_to_space(tf.concat(phases, axis=-1), 2)


def _tap_op(layer, inputs, kernel):
    return tap_convolution(inputs, kernel)


def _subpixel_call(layer, inputs):
    return _finish(layer, subpixel_transpose(inputs, layer.kernel))


def _transpose_call(layer, inputs):
    """``Conv2DTranspose.call`` with ``bias_add``'s gradient summed accurately (see ``bias_add``)."""
    outputs = keras.ops.conv_transpose(
        inputs, layer.kernel, strides=list(layer.strides), padding=layer.padding,
        output_padding=layer.output_padding, dilation_rate=layer.dilation_rate, data_format=layer.data_format)
    return _finish(layer, outputs)


def _finish(layer, outputs):
    """The layer's bias and activation after its convolution (channels last)."""
    if layer.use_bias:
        if sixteen_bit_bias(layer):
            outputs = bias_add(outputs, tf.cast(keras.ops.convert_to_tensor(layer.bias), outputs.dtype))
        else:  # float32's BiasAddGrad is exact enough and faster (4.3 against 8.4 ms); oneDNN fuses
            outputs = outputs + layer.bias  # a Conv2D's bias gradient into its filter gradient
    if layer.activation is keras.activations.leaky_relu:  # inline, Keras's default slope
        return leaky_relu(outputs, INLINE_LEAKY_SLOPE)
    return layer.activation(outputs) if layer.activation is not None else outputs


def _conv_call(layer, inputs):
    """``Conv2D.call`` (channels last) ending in ``_finish``: an inline LeakyReLU differentiates from its output."""
    return _finish(layer, layer.convolution_op(inputs, layer.kernel))


def inline_leaky_relu(layer) -> bool:
    """Whether ``layer`` is a channels-last Conv2D with an inline LeakyReLU (``activation="leaky_relu"``)."""
    return (type(layer) is keras.layers.Conv2D and layer.activation is keras.activations.leaky_relu
            and layer.data_format == "channels_last" and layer.groups == 1)


@tf.custom_gradient
def bias_add(x: tf.Tensor, bias: tf.Tensor):
    """``tf.nn.bias_add`` (channels last) whose bias gradient is a ``reduce_sum``.

    TensorFlow's CPU ``BiasAddGrad`` accumulates a bfloat16 gradient in
    bfloat16: summed over the 131,072 positions of a (128, 32, 32, 128)
    activation its result was off by up to 409 against sums of about 360 in
    size, and it took 12.6 ms. ``reduce_sum`` accumulates in float32 (off by
    the final rounding to bfloat16 only) and took 5.7 ms; for float32 the two
    are the same sum.
    """

    def grad(dy):
        return dy, tf.reduce_sum(dy, axis=list(range(len(dy.shape) - 1)))

    return tf.nn.bias_add(x, bias), grad


def fused_batch_norm_call(layer, inputs, training=None, mask=None):
    """``BatchNormalization.call`` with the fused kernel in training; Keras's own call otherwise.

    The fused op normalises with the biased batch variance (as Keras does)
    and returns the unbiased one, which is rescaled here so that the moving
    variance is updated with the same value as Keras's.
    """
    if not (training and layer.trainable) or mask is not None:
        return type(layer).call(layer, inputs, training=training, mask=mask)
    x = tf.cast(inputs, tf.float32)
    channels = x.shape[-1]
    gamma = layer.gamma if layer.scale else tf.ones([channels])
    beta = layer.beta if layer.center else tf.zeros([channels])
    outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        x, gamma, beta, epsilon=layer.epsilon, data_format="NHWC", is_training=True)
    count = tf.cast(tf.size(x) // channels, tf.float32)
    biased = variance * (count - 1.0) / count
    layer.moving_mean.assign(layer.moving_mean * layer.momentum + mean * (1.0 - layer.momentum))
    layer.moving_variance.assign(layer.moving_variance * layer.momentum + biased * (1.0 - layer.momentum))
    return tf.cast(outputs, inputs.dtype)


def leaky_relu(x: tf.Tensor, alpha: float) -> tf.Tensor:
    """``tf.nn.leaky_relu`` whose gradient reads its output, not its input.

    For a positive slope the output has the input's sign, so ``LeakyReluGrad``
    given the output computes the same gradient. Autodiff's gradient reads
    the input, the convolution's biased output: grappler's remapper still
    fuses the convolution, bias and activation into one kernel, removing the
    tensor that gradient reads, and its rewrite of the whole graph fails
    ("remapper failed: ... fanout ... LeakyReluGrad ... for missing node
    ... BiasAdd"). Reading the output, the fusion is valid.
    """

    @tf.custom_gradient
    def forward(x):
        y = tf.nn.leaky_relu(x, alpha=alpha)
        return y, lambda dy: tf.raw_ops.LeakyReluGrad(gradients=dy, features=y, alpha=alpha)

    return forward(x)


def _leaky_relu_call(layer, inputs):
    return leaky_relu(inputs, layer.negative_slope)


def eligible_leaky_relu(layer) -> bool:
    """Whether ``layer`` is a LeakyReLU layer ``leaky_relu`` computes (a positive slope)."""
    return type(layer) is keras.layers.LeakyReLU and 0.0 < layer.negative_slope


def eligible_batch_norm(layer) -> bool:
    """Whether ``layer`` is a BatchNormalization the fused kernel computes the same way."""
    return (
        type(layer) is keras.layers.BatchNormalization
        and layer.axis in (-1, 3, [3], [-1])
        and not layer.renorm
        and not getattr(layer, "synchronized", False)
        and len(layer.input.shape) == 4
    )


def eligible(layer) -> bool:
    """Whether ``layer`` is a convolution ``tap_convolution`` computes faster."""
    return (
        type(layer) is keras.layers.Conv2D
        and layer.filters <= MAX_TAP_FILTERS
        and tuple(layer.strides) == (1, 1)
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.padding == "same"
        and layer.data_format == "channels_last"
        and layer.groups == 1
    )


def sixteen_bit_bias(layer) -> bool:
    """Whether ``layer`` is a transposed convolution computing in 16 bits with a bias (see ``bias_add``)."""
    return (
        type(layer) is keras.layers.Conv2DTranspose
        and layer.compute_dtype in ("bfloat16", "float16")
        and layer.use_bias
        and layer.data_format == "channels_last"
    )


def eligible_transpose(layer) -> bool:
    """Whether ``layer`` is a transposed convolution ``subpixel_transpose`` computes."""
    return (
        type(layer) is keras.layers.Conv2DTranspose
        and tuple(layer.strides) == (2, 2)
        and all(k % 2 == 0 for k in layer.kernel_size)  # see the module docstring
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.padding == "same"
        and layer.output_padding is None
        and layer.data_format == "channels_last"
    )


# --- which formulation is faster here ------------------------------------------------
# Whether a reformulated convolution beats TensorFlow's own kernel depends on the
# CPU: on a 2-core AVX2 EPYC the sub-pixel transposed convolution made the
# bn_kernel4 step 9% faster, on a 2-core AVX-512 EPYC 24% slower (oneDNN's own
# transposed convolution is fast there). So each layer shape is timed both ways
# (forward and both gradients, batch 32) the first time this machine meets it,
# and the faster kept; the choice is cached per CPU and TensorFlow version.
# HARNESS_CPU_KERNELS=fast or stock skips the timing (always / never reformulate).
MODES = ("auto", "fast", "stock")
TIMING_BATCH = 32
def _mode() -> str:
    mode = os.environ.get("HARNESS_CPU_KERNELS", "auto")
    if mode not in MODES:
        raise ConfigError(f"HARNESS_CPU_KERNELS={mode!r} must be one of {', '.join(MODES)}.")
    return mode


def _seconds(layer, call, inputs: tf.Tensor, repeats: int = 3) -> float:
    """Median seconds of ``call``'s forward pass and gradients on ``inputs``."""
    weights = layer.trainable_weights

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = call(x)
        return tape.gradient(y, [x, *weights])

    step(inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for grad in step(inputs):
            grad.numpy()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def faster(kind: str, layer, stock, reformulated) -> bool:
    """Whether ``reformulated`` (a call on the layer's input) beats ``stock`` here."""
    mode = _mode()
    if mode != "auto":
        return mode == "fast"
    shape = tuple(int(d) for d in layer.input.shape[1:])
    key = f"{machine_key()}|{kind}|{shape}|{tuple(layer.kernel.shape)}"

    def timed() -> bool:
        inputs = tf.random.normal((TIMING_BATCH, *shape))
        return _seconds(layer, reformulated, inputs) < _seconds(layer, stock, inputs)

    return remembered("kernels", key, timed)


def accelerate(model: keras.Model, force: bool = False) -> list[str]:
    """Use the faster formulation in ``model``'s eligible layers; return their names.

    BatchNorm always trains fused; a convolution is reformulated where the
    timing above found it faster on this machine; a LeakyReLU, as a layer or
    inline in a convolution, gets the gradient of ``leaky_relu`` (the same
    values; not listed). Does nothing when a GPU is
    visible, unless ``force`` (which also reformulates every eligible layer).
    """
    if not force and tf.config.list_physical_devices("GPU"):
        return []
    names = []
    for layer in model.layers:
        if eligible(layer) and (force or faster("tap", layer, lambda x, layer=layer: layer(x),
                                                lambda x, layer=layer: _tap_call(layer, x))):
            layer.convolution_op = types.MethodType(_tap_op, layer)
            names.append(layer.name)
        elif eligible_transpose(layer) and (force or faster("subpixel", layer, lambda x, layer=layer: layer(x),
                                                            lambda x, layer=layer: _subpixel_call(layer, x))):
            layer.call = types.MethodType(_subpixel_call, layer)
            names.append(layer.name)
        elif sixteen_bit_bias(layer):
            layer.call = types.MethodType(_transpose_call, layer)
            names.append(layer.name)
        elif eligible_batch_norm(layer):
            layer.call = types.MethodType(fused_batch_norm_call, layer)
            names.append(layer.name)
        elif eligible_leaky_relu(layer):
            layer.call = types.MethodType(_leaky_relu_call, layer)
        elif inline_leaky_relu(layer):
            layer.call = types.MethodType(_conv_call, layer)
    return names


def _tap_call(layer, inputs):
    return _finish(layer, tap_convolution(inputs, layer.kernel))
