"""The one GAN model: a ``keras.Model`` whose ``train_step`` updates D, then G.

Variants differ only through the spec: the networks it builds and the
discriminator update mode (``split``: one update on a real batch and one on a
fake batch, as the published notebooks do; ``mixed``: one update on the
concatenated batch). The step runs entirely on the graph: images arrive as
uint8 and are scaled here, noise is drawn from a Keras seed generator, and
the epoch's metrics are aggregated by ``keras.metrics.Mean`` trackers.

``precision`` (see ``harness.train.precision``) sets the networks' Keras
dtype policy, layer by layer; the images G outputs, D's logits, BatchNorm's
statistics, the losses and the accuracies stay float32 under every policy.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from harness.train.kernels import accelerate
from harness.train.precision import POLICIES
from variants.builders import build_discriminator, build_generator
from variants.spec import VariantSpec

# Per-epoch training metrics, in the order they are reported.
TRAIN_METRICS = (
    "d_loss", "d_loss_real", "d_loss_fake", "g_loss",
    "real_acc", "fake_acc", "d_real", "d_fake",
)


def bce(labels: tf.Tensor | float, logits: tf.Tensor) -> tf.Tensor:
    """Mean binary cross-entropy of sigmoid(logits) against ``labels``."""
    labels = tf.broadcast_to(tf.cast(labels, logits.dtype), tf.shape(logits))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


class GAN(keras.Model):
    """Generator and discriminator trained adversarially with per-network Adam.

    ``real_acc`` is the fraction of real images D scores above 0.5 and
    ``fake_acc`` the fraction of generated images it scores below 0.5, both
    measured in the discriminator update; ``d_real``/``d_fake`` are the mean
    D(x) and D(G(z)).
    """

    def __init__(self, spec: VariantSpec, seed: int = 0, precision: str = "float32", **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.precision = precision
        # float32 passes no policy at all, so its layers are exactly as before mixed precision existed.
        policy = POLICIES[precision] if precision != "float32" else None
        self.generator = build_generator(spec, policy)
        self.discriminator = build_discriminator(spec, policy)
        accelerate(self.generator)  # CPU only; same weights and saved form
        accelerate(self.discriminator)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in TRAIN_METRICS}

    def compile(self, **kwargs) -> None:
        """Compile with the spec's two Adam optimisers (``kwargs`` go to Keras)."""
        super().compile(**kwargs)
        spec = self.spec
        self.g_optimizer = keras.optimizers.Adam(spec.g_lr, beta_1=spec.g_beta_1, name="g_adam")
        self.d_optimizer = keras.optimizers.Adam(spec.d_lr, beta_1=spec.d_beta_1, name="d_adam")
        if self.precision == "float16":
            # float16 gradients underflow: the loss is scaled up (dynamically) before
            # differentiating, the gradients scaled back, and a step that overflowed skipped.
            self.g_optimizer = keras.optimizers.LossScaleOptimizer(self.g_optimizer, name="g_scaled")
            self.d_optimizer = keras.optimizers.LossScaleOptimizer(self.d_optimizer, name="d_scaled")
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        # Listing the trackers here makes fit() reset them at each epoch start.
        return list(self.trackers.values())

    def call(self, z, training: bool = False):
        return self.generator(z, training=training)

    def train_step(self, real_images):
        real = tf.cast(real_images, tf.float32) / 127.5 - 1.0
        batch = tf.shape(real)[0]
        real_label = 1.0 - self.spec.label_smoothing

        # --- discriminator ---------------------------------------------------
        z = keras.random.normal((batch, self.spec.latent_dim), seed=self.seed_generator)
        fake = self.generator(z, training=True)
        d_vars = self.discriminator.trainable_variables
        if self.spec.d_update == "split":
            with tf.GradientTape() as tape:
                real_logits = self.discriminator(real, training=True)
                d_loss_real = bce(real_label, real_logits)
                scaled = self.d_optimizer.scale_loss(d_loss_real)
            self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, d_vars), d_vars))
            with tf.GradientTape() as tape:
                fake_logits = self.discriminator(fake, training=True)
                d_loss_fake = bce(0.0, fake_logits)
                scaled = self.d_optimizer.scale_loss(d_loss_fake)
            self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, d_vars), d_vars))
        else:
            with tf.GradientTape() as tape:
                logits = self.discriminator(tf.concat([real, fake], axis=0), training=True)
                real_logits, fake_logits = logits[:batch], logits[batch:]
                d_loss_real = bce(real_label, real_logits)
                d_loss_fake = bce(0.0, fake_logits)
                scaled = self.d_optimizer.scale_loss(0.5 * (d_loss_real + d_loss_fake))
            self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, d_vars), d_vars))

        # --- generator: fool D on fresh noise ----------------------------------
        z = keras.random.normal((batch, self.spec.latent_dim), seed=self.seed_generator)
        g_vars = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            g_logits = self.discriminator(self.generator(z, training=True), training=True)
            g_loss = bce(1.0, g_logits)
            scaled = self.g_optimizer.scale_loss(g_loss)
        self.g_optimizer.apply_gradients(zip(tape.gradient(scaled, g_vars), g_vars))

        # --- metrics, aggregated on the graph ----------------------------------
        values = {
            "d_loss": 0.5 * (d_loss_real + d_loss_fake),
            "d_loss_real": d_loss_real,
            "d_loss_fake": d_loss_fake,
            "g_loss": g_loss,
            "real_acc": tf.reduce_mean(tf.cast(real_logits > 0.0, tf.float32)),
            "fake_acc": tf.reduce_mean(tf.cast(fake_logits < 0.0, tf.float32)),
            "d_real": tf.reduce_mean(tf.sigmoid(real_logits)),
            "d_fake": tf.reduce_mean(tf.sigmoid(fake_logits)),
        }
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def sample(self, z) -> tf.Tensor:
        """Generated float32 images in [-1, 1] for noise ``z`` (inference mode)."""
        return self.generator(z, training=False)

    def float32_generator(self) -> keras.Model:
        """The generator as plain float32 Keras, with the current weights: what is saved, logged and scored.

        Under float32 it is ``self.generator``; under a mixed policy a new float32
        copy (weights are float32 under every policy, so nothing is rounded), so
        that a saved generator loads, serves and samples exactly as a
        float32-trained one does. Not kept on the model: Keras would track it
        as a third network.
        """
        if self.precision == "float32":
            return self.generator
        copy = build_generator(self.spec)
        copy.set_weights(self.generator.get_weights())
        accelerate(copy)
        return copy
