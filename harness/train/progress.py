"""What a run prints as it goes: one line per epoch, and durations people read."""

from __future__ import annotations

import time


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


class Timeline:
    """Where a run's wall time went, phase by phase: ``mark(phase)`` adds the time since the
    previous mark to ``phase`` (phases repeat, e.g. once per epoch, and add up)."""

    def __init__(self, start: float):
        self.last = start
        self.phases: dict[str, float] = {}

    def mark(self, phase: str) -> float:
        now = time.perf_counter()
        spent, self.last = now - self.last, now
        self.phases[phase] = self.phases.get(phase, 0.0) + spent
        return spent

    def line(self) -> str:
        """``timeline: imports 6.1 s, data 0.4 s, ... (total 130 s)``."""
        total = sum(self.phases.values())
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.phases.items())
        return f"timeline: {parts} (total {total:.0f} s)"
