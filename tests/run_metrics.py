"""What a training run logs every epoch, and at which epochs a run logged it: for the tests
that check that no epoch's metrics are lost or logged twice."""

from __future__ import annotations

from harness import tracking
from harness.gan import TRAIN_METRICS

# harness.train.run logs these beside the GAN's own metrics, every epoch.
TIMINGS = ("images_per_s", "epoch_seconds", "tracking_seconds")
EPOCH_METRICS = (*TRAIN_METRICS, *TIMINGS)


def logged_epochs(uri: str, run_id: str) -> dict[str, list[int]]:
    """Each of EPOCH_METRICS: the epochs (steps) at which ``run_id`` logged it, one entry per value."""
    client = tracking.client(uri)
    return {key: sorted(m.step for m in client.get_metric_history(run_id, key)) for key in EPOCH_METRICS}


def each_metric_at(*epochs: int) -> dict[str, list[int]]:
    """What ``logged_epochs`` says of a run that logged every metric once at each of ``epochs``."""
    return {key: list(epochs) for key in EPOCH_METRICS}
