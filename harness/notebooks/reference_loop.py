"""The published notebooks' training loop, for timing (``bench``) and comparison (``fidelity``).

``NotebookTrainer`` builds a variant's networks as the notebooks did (D with a
sigmoid, a combined G -> D model) and trains with ``generator.predict``, two
``discriminator.train_on_batch`` and the combined model's ``train_on_batch``.
Its metrics follow the harness's definitions (``harness.train.gan``) so that
the two loops can be compared value by value.
"""

from __future__ import annotations

import time

import numpy as np

from variants.spec import VariantSpec

# Keras is imported inside functions: `bench --help` and `fidelity --help` must start fast.


def synthetic_images(batch: int, spec: VariantSpec, batches: int) -> np.ndarray:
    """``batches`` batches of random uint8 images of ``spec``'s shape (speed does not depend on content)."""
    return np.random.default_rng(0).integers(0, 256, (batch * batches, *spec.image_shape), dtype=np.uint8)


def scored_real(y_true, y_pred):
    """Per image, 1 where D scores it above 0.5: on a real batch its mean is ``real_acc`` (gan.py)."""
    import keras

    return keras.ops.cast(y_pred > 0.5, "float32")


def scored_fake(y_true, y_pred):
    """Per image, 1 where D scores it below 0.5: on a fake batch its mean is ``fake_acc`` (gan.py)."""
    import keras

    return keras.ops.cast(y_pred < 0.5, "float32")


class NotebookTrainer:
    """The published notebooks' loop: predict, D.train_on_batch twice, combined train_on_batch.

    The notebooks were written for Keras 2, where a model's trainable weights
    were fixed when it was compiled: D compiled trainable, then
    ``D.trainable = False`` and the combined model compiled, so the combined
    update moved G only. Keras 3 reads ``trainable`` when a model's step is
    first traced, at its first ``train_on_batch``: the same code, with
    ``D.trainable = True`` set back after compiling, also trains D in the
    combined update (towards calling fakes real). ``combined_d="frozen"``
    (default) keeps the notebooks' behaviour by setting D's flag before each
    call (True for its own updates, False for the combined one);
    ``"trainable"`` is the straight Keras 3 port.

    ``fakes`` is how G makes the fakes for D's update: ``"predict"`` (default,
    the notebooks: ``generator.predict``, BatchNorm on its moving statistics)
    or ``"training"`` (G called in training mode, BatchNorm on the batch's
    statistics, as the harness's step does). It matters only for variants with
    BatchNorm in G; ``"training"`` isolates that one difference between the loops.

    ``step`` returns one batch's metrics with the harness's definitions (see
    ``harness.train.gan``): the losses and accuracies of D's forward pass in each
    update (before the update), ``d_loss`` the mean of its real and fake
    losses, ``g_loss`` the combined model's. Losses are Keras's
    ``binary_crossentropy`` on D's sigmoid, as in the notebooks.
    """

    COMBINED_D = ("frozen", "trainable")
    FAKES = ("predict", "training")

    def __init__(self, spec: VariantSpec, batch: int, *, seed: int = 0, combined_d: str = "frozen",
                 fakes: str = "predict"):
        import keras

        from variants.builders import build_discriminator, build_generator

        if combined_d not in self.COMBINED_D:
            raise ValueError(f"combined_d={combined_d!r} is not one of {self.COMBINED_D}")
        if fakes not in self.FAKES:
            raise ValueError(f"fakes={fakes!r} is not one of {self.FAKES}")
        self.g = build_generator(spec)
        logits = build_discriminator(spec)
        self.d = keras.Sequential([logits, keras.layers.Activation("sigmoid")])
        self.d.compile(loss="binary_crossentropy", metrics=[scored_real, scored_fake],
                       optimizer=keras.optimizers.Adam(spec.d_lr, beta_1=spec.d_beta_1))
        self.d.trainable = False
        z = keras.Input((spec.latent_dim,))
        self.combined = keras.Model(z, self.d(self.g(z)))
        self.combined.compile(loss="binary_crossentropy",
                              optimizer=keras.optimizers.Adam(spec.g_lr, beta_1=spec.g_beta_1))
        self.d.trainable = True
        self.combined_d, self.fakes = combined_d, fakes
        self.batch, self.latent = batch, spec.latent_dim
        self.images = (synthetic_images(batch, spec, 8).astype(np.float32) / 127.5 - 1.0)
        self.real_labels = np.full((batch, 1), 1.0 - spec.label_smoothing, np.float32)
        self.ones, self.zeros = np.ones((batch, 1), np.float32), np.zeros((batch, 1), np.float32)
        self.rng = np.random.default_rng(seed)

    def noise(self) -> np.ndarray:
        return self.rng.standard_normal((self.batch, self.latent)).astype(np.float32)

    def step(self, real: np.ndarray, z_fake: np.ndarray, z_g: np.ndarray) -> dict[str, float]:
        """One batch: D on ``real`` (float32 in [-1, 1]), D on G(``z_fake``), G through D on ``z_g``."""
        if self.fakes == "predict":
            fake = self.g.predict(z_fake, verbose=0)
        else:
            fake = np.asarray(self.g(z_fake, training=True))
        self.d.trainable = True
        on_real = self.d.train_on_batch(real, self.real_labels, return_dict=True)
        on_fake = self.d.train_on_batch(fake, self.zeros, return_dict=True)
        self.d.trainable = self.combined_d == "trainable"
        on_g = self.combined.train_on_batch(z_g, self.ones, return_dict=True)
        self.d.trainable = True
        d_loss_real, d_loss_fake = float(on_real["loss"]), float(on_fake["loss"])
        return {"d_loss": 0.5 * (d_loss_real + d_loss_fake), "d_loss_real": d_loss_real,
                "d_loss_fake": d_loss_fake, "g_loss": float(on_g["loss"]),
                "real_acc": float(on_real["scored_real"]), "fake_acc": float(on_fake["scored_fake"])}

    def train_epoch(self, batches) -> dict[str, float]:
        """Train on each uint8 batch of ``batches`` (scaled as ``GAN.train_step`` scales them);
        return each metric's mean over the batches, as the harness's ``Mean`` trackers do.
        Each batch draws D's noise, then G's, from this trainer's generator."""
        values: dict[str, list[float]] = {}
        for images in batches:
            real = np.asarray(images, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)
            for key, value in self.step(real, self.noise(), self.noise()).items():
                values.setdefault(key, []).append(value)
        return {key: float(np.mean(v)) for key, v in values.items()}

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for i in range(steps):
            self.step(self.images[(i % 8) * self.batch:(i % 8 + 1) * self.batch], self.noise(), self.noise())
        return steps * self.batch / (time.perf_counter() - start)
