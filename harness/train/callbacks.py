"""Keras callbacks for one epoch of training: the progress bar and the NaN guard."""

from __future__ import annotations

import math

import keras
from tqdm.auto import tqdm


class ProgressBar(keras.callbacks.Callback):
    """tqdm bar over one epoch's images, with the running losses as postfix."""

    def __init__(self, epoch: int, epochs: int, steps: int, batch_size: int, enabled: bool = True):
        super().__init__()
        self.description = f"epoch {epoch}/{epochs}"
        self.steps, self.batch_size, self.enabled = steps, batch_size, enabled
        self.bar = None
        self.done = 0

    def on_train_begin(self, logs=None):
        if self.enabled:
            self.bar = tqdm(total=self.steps * self.batch_size, desc=self.description,
                            unit="img", unit_scale=False, dynamic_ncols=True, leave=True)

    def on_train_batch_end(self, batch, logs=None):
        if self.bar is None:
            return
        # With steps_per_execution > 1, Keras reports the last step of each call.
        step = batch + 1
        self.bar.update((step - self.done) * self.batch_size)
        self.done = step
        if logs:
            self.bar.set_postfix(d_loss=f"{float(logs['d_loss']):.3f}", g_loss=f"{float(logs['g_loss']):.3f}",
                                 refresh=False)

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()


class NonFiniteGuard(keras.callbacks.Callback):
    """Stop training at the first NaN/inf loss, remembering which loss and when."""

    def __init__(self):
        super().__init__()
        self.bad: str | None = None
        self.value: float | None = None
        self.step: int | None = None

    def on_train_batch_end(self, batch, logs=None):
        for name in ("d_loss", "g_loss"):
            value = float((logs or {}).get(name, 0.0))
            if not math.isfinite(value):
                self.bad, self.value, self.step = name, value, batch + 1
                self.model.stop_training = True
                return
