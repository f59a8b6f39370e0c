"""Build the generator and discriminator of a variant from its spec.

Both are plain ``keras.Sequential``-style functional models, so a logged
generator loads anywhere Keras does, without this package.

The discriminator ends in ``Dense(1)`` without the published sigmoid: the
sigmoid is folded into the loss (``sigmoid_cross_entropy_with_logits``), which
is the same function but stable when D saturates. D(x) probabilities are
``sigmoid(logits)``.
"""

from __future__ import annotations

import keras
from keras import layers

from variants.spec import VariantSpec


def build_generator(spec: VariantSpec) -> keras.Model:
    """Map (batch, latent_dim) noise to (batch, S, S, C) images in [-1, 1]."""
    bn = spec.batchnorm in ("generator", "both")
    z = keras.Input((spec.latent_dim,), name="z")
    x = layers.Dense(spec.base * spec.base * spec.g_dense_filters, name="project")(z)
    x = layers.Reshape((spec.base, spec.base, spec.g_dense_filters))(x)
    # A layer in both forms: an inline activation on the Dense would need the
    # Reshape in between, and an activation right after it is the same function.
    x = _normalised(x, spec, bn and spec.bn_on_dense, _activation(spec.dense_activation, spec))
    for filters in spec.g_filters:
        conv = layers.Conv2DTranspose(
            filters, spec.kernel, strides=2, padding="same",
            activation=spec.g_activation if spec.leaky_relu == "inline" else None,
        )
        x = _block(x, spec, conv, bn, spec.g_activation)
    out = layers.Conv2DTranspose if spec.g_out_transpose else layers.Conv2D
    x = out(
        spec.channels, spec.g_out_kernel, strides=2 if spec.g_out_transpose else 1,
        padding="same", activation="tanh", name="image",
    )(x)
    return keras.Model(z, x, name="generator")


def build_discriminator(spec: VariantSpec) -> keras.Model:
    """Map (batch, S, S, C) images in [-1, 1] to (batch, 1) real/fake logits.

    BatchNorm, when on, follows every convolution but the first (DCGAN
    practice: normalising the input layer destabilises training).
    """
    bn = spec.batchnorm in ("discriminator", "both")
    image = keras.Input(spec.image_shape, name="image")
    x = image
    for i, block in enumerate(spec.d_blocks):
        # The kernel axis applies to the strided convolutions; a stride-1
        # input convolution keeps the published 3x3.
        kernel = block.kernel or (spec.kernel if block.stride > 1 else 3)
        conv = layers.Conv2D(
            block.filters, kernel, strides=block.stride, padding="same",
            activation="leaky_relu" if spec.leaky_relu == "inline" else None,
        )
        x = _block(x, spec, conv, bn and i > 0, "leaky_relu")
        if spec.dropout == "blocks":
            x = layers.Dropout(spec.dropout_rate)(x)
    x = layers.Flatten()(x)
    if spec.dropout == "head":
        x = layers.Dropout(spec.dropout_rate)(x)
    logits = layers.Dense(1, name="logit")(x)
    return keras.Model(image, logits, name="discriminator")


def _block(x, spec: VariantSpec, conv: layers.Layer, bn: bool, activation: str):
    """A convolution, then BatchNorm and ``activation`` in the spec's order and form."""
    x = conv(x)
    if spec.leaky_relu == "inline":
        # The activation is inside the convolution, so BatchNorm can only follow it.
        return layers.BatchNormalization(momentum=spec.bn_momentum)(x) if bn else x
    return _normalised(x, spec, bn, _activation(activation, spec))


def _normalised(x, spec: VariantSpec, bn: bool, activation: layers.Layer):
    """Apply ``activation`` with optional BatchNorm before it (or after, if the spec says)."""
    if not bn:
        return activation(x)
    norm = layers.BatchNormalization(momentum=spec.bn_momentum)
    return norm(activation(x)) if spec.bn_after_activation else activation(norm(x))


def _activation(name: str, spec: VariantSpec) -> layers.Layer:
    """The layer form of a hidden activation: ``"leaky_relu"`` or ``"relu"``."""
    if name == "relu":
        return layers.ReLU()
    return layers.LeakyReLU(negative_slope=spec.leaky_slope)
