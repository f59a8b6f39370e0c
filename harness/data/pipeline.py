"""In-memory arrays as tf.data batches, without tf.data's autotuning thread.

Every ``fit``/``predict`` builds an iterator over its dataset and destroys it
when it returns. With autotuning on (the default, and what
``prefetch(AUTOTUNE)`` relies on), each iterator starts a thread that
re-tunes the pipeline on a period that doubles from 10 ms up to a minute,
and the iterator's destructor joins that thread without waking it: a native
stack taken during the pause shows the main thread in
``RootDataset::Iterator::~Iterator`` -> ``LogicalThreadWrapper`` waiting,
and the tuning thread in ``Model::OptimizeLoop``'s timed wait. So a ``fit``
lasted until the thread's next wake-up: 1.27, 2.55, 5.11, 10.23, 20.47 s ...
after it started, whatever its batches took (a 6-step ``bn_kernel4`` epoch:
11 s of batches, 20.48 s of ``fit``). The harness calls ``fit`` once per
epoch, so every epoch paid it.

These pipelines slice arrays already in memory: there is nothing to tune,
so autotuning is off and the prefetch buffer is fixed. Build every dataset
that ``fit`` or ``predict`` consumes here (a NumPy array given to Keras
directly gets Keras's own autotuned pipeline).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

PREFETCH = 2  # batches prepared ahead of the step; a slice of memory is fast to make


def untuned(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` with a fixed prefetch buffer and tf.data autotuning off (see the module docstring)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(PREFETCH).with_options(options)


def shuffle_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of ``epoch``: a function of (seed, epoch) alone, so a resumed run
    sees the same batches as one that never stopped."""
    return seed * 100_003 + epoch


def epoch_batches(images: np.ndarray | tf.data.Dataset, batch_size: int, *, seed: int,
                  epoch: int) -> tf.data.Dataset:
    """One epoch of shuffled, full batches of ``images`` (uint8 NHWC, or their slices)."""
    if not isinstance(images, tf.data.Dataset):
        images = tf.data.Dataset.from_tensor_slices(images)
    count = int(images.cardinality())
    return untuned(images.shuffle(count, seed=shuffle_seed(seed, epoch), reshuffle_each_iteration=False)
                   .batch(batch_size, drop_remainder=True))


def repeated_batches(images: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Full batches of ``images`` in order, repeated forever (benchmarks: ``steps_per_epoch`` bounds a fit)."""
    return untuned(tf.data.Dataset.from_tensor_slices(images).repeat().batch(batch_size, drop_remainder=True))


def array_batches(*arrays: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Batches of the arrays in order, the last one partial (``fit(x, y)`` / ``predict(x)``)."""
    data = arrays[0] if len(arrays) == 1 else tuple(arrays)
    return untuned(tf.data.Dataset.from_tensor_slices(data).batch(batch_size))
