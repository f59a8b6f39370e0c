"""``runs.csv``: every run behind a report's numbers, one row each, with every logged metric and param.

The columns of the report's runs table first (run id, name, experiment,
dataset, variant, seed, evaluation), then the run's status and start time (UTC,
ISO 8601), then ``metric.<key>`` (the last logged value of each metric) and
``param.<key>`` for every key any run logged. A reader recomputes every number
of the report from it: each verdict pairs the ``metric.kid`` (or ``metric.fid``)
of a variant's run with the base's on the same dataset and seed.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

from reports.collect import RunRecord

FIRST = ("run_id", "run_name", "experiment", "dataset", "variant", "seed", "eval", "status", "start_time")


def write(runs: list[RunRecord], path: Path) -> Path:
    """Write ``runs`` (sorted by dataset, variant, seed) to ``path``; return ``path``."""
    metrics = sorted({k for r in runs for k in r.metrics})
    params = sorted({k for r in runs for k in r.params})
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*FIRST, *(f"metric.{k}" for k in metrics), *(f"param.{k}" for k in params)])
        for r in sorted(runs, key=lambda r: (r.dataset or "", r.variant or "", r.seed is None, r.seed or 0)):
            started = datetime.fromtimestamp(r.start_time / 1000, timezone.utc).isoformat() if r.start_time else ""
            writer.writerow([r.run_id, r.run_name, r.experiment, r.dataset, r.variant, r.seed, r.eval_label,
                             r.status, started, *(repr(float(r.metrics[k])) if k in r.metrics else ""
                                                  for k in metrics), *(r.params.get(k, "") for k in params)])
    return path
