"""What one epoch of training shows and guards: the progress bar, the summary line, the NaN guard."""

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


class EpochLine:
    """One line per epoch, on a terminal or in a log file alike: progress, the losses and
    accuracies, speed, and the time left for the whole run."""

    SHOWN = ("d_loss", "g_loss", "real_acc", "fake_acc")

    def __init__(self, epochs: int, first_epoch: int, log=print):
        self.epochs, self.first, self.log = epochs, first_epoch, log
        self.spent = 0.0

    def report(self, epoch: int, metrics: dict[str, float], seconds: float) -> None:
        """Print epoch ``epoch``'s line; ``seconds`` is all it took (training, evaluation, saving)."""
        self.spent += seconds
        left = (self.epochs - epoch) * self.spent / (epoch - self.first + 1)
        values = " ".join(f"{k} {metrics[k]:.3f}" for k in self.SHOWN if k in metrics)
        scores = " ".join(f"{k} {metrics[k]:.4g}" for k in ("fid", "kid", "is") if k in metrics)
        self.log(f"epoch {epoch}/{self.epochs}: {values}{' | ' + scores if scores else ''} | "
                 f"{metrics.get('images_per_s', 0):.1f} img/s, {seconds:.1f} s | ETA {duration(left)}")


def duration(seconds: float) -> str:
    """``3h05m``, ``4m07s`` or ``12s``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


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
