"""Build the generator and discriminator of a variant from its spec.

Both are plain ``keras.Sequential``-style functional models, so a logged
generator loads anywhere Keras does, without this package.

The discriminator ends in ``Dense(1)`` without the published sigmoid: the
sigmoid is folded into the loss (``sigmoid_cross_entropy_with_logits``), which
is the same function but stable when D saturates. D(x) probabilities are
``sigmoid(logits)``.

``policy`` (a Keras dtype policy name such as ``"mixed_bfloat16"``) is passed
to every hidden layer, not set globally, so building under one precision
never changes another model in the same process. The generator's output
layer (its tanh) and the discriminator's logit layer always compute in
float32: images and logits, and so losses, accuracies and evaluation, are
float32 whatever the policy. Weights are float32 under every policy.
"""

from __future__ import annotations

import keras
from keras import layers

from variants.spec import VariantSpec


def build_generator(spec: VariantSpec, policy: str | None = None) -> keras.Model:
    """Map (batch, latent_dim) noise to (batch, S, S, C) float32 images in [-1, 1].

    ``policy``: the hidden layers' Keras dtype policy (None: the global one, float32).
    """
    bn = spec.batchnorm in ("generator", "both")
    dtype = _dtype(policy)
    z = keras.Input((spec.latent_dim,), name="z")
    x = layers.Dense(spec.base * spec.base * spec.g_dense_filters, name="project", **dtype)(z)
    x = layers.Reshape((spec.base, spec.base, spec.g_dense_filters), **dtype)(x)
    # A layer in both forms: an inline activation on the Dense would need the
    # Reshape in between, and an activation right after it is the same function.
    x = _normalised(x, spec, bn and spec.bn_on_dense, _activation(spec.dense_activation, spec, dtype), dtype)
    for filters in spec.g_filters:
        conv = layers.Conv2DTranspose(
            filters, spec.kernel, strides=2, padding="same",
            activation=spec.g_activation if spec.leaky_relu == "inline" else None, **dtype,
        )
        x = _block(x, spec, conv, bn, spec.g_activation, dtype)
    out = layers.Conv2DTranspose if spec.g_out_transpose else layers.Conv2D
    x = out(
        spec.channels, spec.g_out_kernel, strides=2 if spec.g_out_transpose else 1,
        padding="same", activation="tanh", name="image", **_dtype(policy and "float32"),
    )(x)
    return keras.Model(z, x, name="generator")


def build_discriminator(spec: VariantSpec, policy: str | None = None) -> keras.Model:
    """Map (batch, S, S, C) images in [-1, 1] to (batch, 1) float32 real/fake logits.

    BatchNorm, when on, follows every convolution but the first (DCGAN
    practice: normalising the input layer destabilises training). ``policy``:
    the hidden layers' Keras dtype policy (None: the global one, float32).
    """
    bn = spec.batchnorm in ("discriminator", "both")
    dtype = _dtype(policy)
    image = keras.Input(spec.image_shape, name="image")
    x = image
    for i, block in enumerate(spec.d_blocks):
        # The kernel axis applies to the strided convolutions; a stride-1
        # input convolution keeps the published 3x3.
        kernel = block.kernel or (spec.kernel if block.stride > 1 else 3)
        conv = layers.Conv2D(
            block.filters, kernel, strides=block.stride, padding="same",
            activation="leaky_relu" if spec.leaky_relu == "inline" else None, **dtype,
        )
        x = _block(x, spec, conv, bn and i > 0, "leaky_relu", dtype)
        if spec.dropout == "blocks":
            x = layers.Dropout(spec.dropout_rate, **dtype)(x)
    x = layers.Flatten(**dtype)(x)
    if spec.dropout == "head":
        x = layers.Dropout(spec.dropout_rate, **dtype)(x)
    logits = layers.Dense(1, name="logit", **_dtype(policy and "float32"))(x)
    return keras.Model(image, logits, name="discriminator")


def _dtype(policy: str | None) -> dict[str, str]:
    """A layer's ``dtype`` keyword for ``policy`` (none for None: the global policy)."""
    return {"dtype": policy} if policy else {}


def _block(x, spec: VariantSpec, conv: layers.Layer, bn: bool, activation: str, dtype: dict[str, str]):
    """A convolution, then BatchNorm and ``activation`` in the spec's order and form."""
    x = conv(x)
    if spec.leaky_relu == "inline":
        # The activation is inside the convolution, so BatchNorm can only follow it.
        return layers.BatchNormalization(momentum=spec.bn_momentum, **dtype)(x) if bn else x
    return _normalised(x, spec, bn, _activation(activation, spec, dtype), dtype)


def _normalised(x, spec: VariantSpec, bn: bool, activation: layers.Layer, dtype: dict[str, str]):
    """Apply ``activation`` with optional BatchNorm before it (or after, if the spec says).

    Under a mixed policy Keras's BatchNormalization computes its statistics in
    float32 (and keeps them float32) whatever its input's dtype.
    """
    if not bn:
        return activation(x)
    norm = layers.BatchNormalization(momentum=spec.bn_momentum, **dtype)
    return norm(activation(x)) if spec.bn_after_activation else activation(norm(x))


def _activation(name: str, spec: VariantSpec, dtype: dict[str, str]) -> layers.Layer:
    """The layer form of a hidden activation: ``"leaky_relu"`` or ``"relu"``."""
    if name == "relu":
        return layers.ReLU(**dtype)
    return layers.LeakyReLU(negative_slope=spec.leaky_slope, **dtype)
