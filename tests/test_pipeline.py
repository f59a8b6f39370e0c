"""The training pipelines: no idle time after a fit, the same batches for the same (seed, epoch)."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest

from harness.data.pipeline import array_batches, epoch_batches, repeated_batches
from harness.train.gan import GAN
from variants import resolve

BATCH = 8
STEPS = 6
STEP_SLEEP = 0.22  # s: a fit lasts ~1.5 s, well inside the gap between two wake-ups (1.27, 2.55 s)


class BatchClock(keras.callbacks.Callback):
    """Sums the time spent inside batches and stretches each by STEP_SLEEP."""

    def on_train_begin(self, logs=None):
        self.inside = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(STEP_SLEEP)
        self.inside += time.perf_counter() - self.start


def test_a_fit_takes_no_longer_than_its_batches():
    # With tf.data autotuning on, destroying the fit's iterator waited for the tuning
    # thread's next wake-up (2.55 s after the iterator started): a ~1.5 s fit took
    # ~2.6 s. The margin here is far below that and far above Keras's own overhead.
    images = np.random.default_rng(0).integers(0, 256, (BATCH * STEPS, 32, 32, 3), dtype=np.uint8)
    gan = GAN(resolve("animals_baseline").scaled(0.05))
    gan.compile(jit_compile=False)
    gan.fit(epoch_batches(images, BATCH, seed=0, epoch=0), epochs=1, verbose=0, shuffle=False)  # trace
    for epoch in (1, 2, 3):
        clock = BatchClock()
        start = time.perf_counter()
        gan.fit(epoch_batches(images, BATCH, seed=0, epoch=epoch), epochs=1, verbose=0, shuffle=False,
                callbacks=[clock])
        idle = time.perf_counter() - start - clock.inside
        assert idle < 0.2, f"fit {epoch}: {idle:.2f} s outside its batches ({clock.inside:.2f} s inside)"


@pytest.mark.parametrize("build", [
    lambda x: epoch_batches(x, 4, seed=0, epoch=1),
    lambda x: repeated_batches(x, 4),
    lambda x: array_batches(x, batch_size=4),
])
def test_every_pipeline_has_autotuning_off(build):
    dataset = build(np.zeros((12, 2), np.uint8))
    assert dataset.options().autotune.enabled is False


def test_batches_depend_on_seed_and_epoch_only():
    images = np.arange(64, dtype=np.uint8).reshape(64, 1)

    def order(seed, epoch):
        return np.concatenate([b.numpy() for b in epoch_batches(images, 8, seed=seed, epoch=epoch)]).ravel()

    assert np.array_equal(order(3, 2), order(3, 2))
    assert not np.array_equal(order(3, 2), order(3, 1))
    assert sorted(order(3, 2)) == list(range(64))  # every image once per epoch
