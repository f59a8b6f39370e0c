"""What a training run logs every epoch, at which epochs a run logged it, and a run that dies
between an epoch's checkpoint and its metrics: for the tests that check that no epoch's metrics
are lost or logged twice."""

from __future__ import annotations

import pytest

from harness.config import RunConfig
from harness.store import tracking
from harness.train import run as train
from harness.train.gan import TRAIN_METRICS

# harness.train.run.run logs these beside the GAN's own metrics, every epoch.
TIMINGS = ("images_per_s", "epoch_seconds", "tracking_seconds")
EPOCH_METRICS = (*TRAIN_METRICS, *TIMINGS)


def logged_epochs(uri: str, run_id: str) -> dict[str, list[int]]:
    """Each of EPOCH_METRICS: the epochs (steps) at which ``run_id`` logged it, one entry per value."""
    client = tracking.client(uri)
    return {key: sorted(m.step for m in client.get_metric_history(run_id, key)) for key in EPOCH_METRICS}


def each_metric_at(*epochs: int) -> dict[str, list[int]]:
    """What ``logged_epochs`` says of a run that logged every metric once at each of ``epochs``."""
    return {key: list(epochs) for key in EPOCH_METRICS}


class Died(BaseException):
    """Stands in for the process dying at an exact point (no ``except Exception`` catches it)."""


def die_before_logging(config: RunConfig, epoch: int) -> None:
    """Train ``config`` until it dies right after checkpointing ``epoch``, before logging its metrics."""
    real = tracking.RunLogger.log_metrics

    def log_metrics(self, metrics, step):
        if step == epoch:
            raise Died
        return real(self, metrics, step)

    tracking.RunLogger.log_metrics = log_metrics
    try:
        with pytest.raises(Died):
            train.run(config, log=lambda _: None)
    finally:
        tracking.RunLogger.log_metrics = real
