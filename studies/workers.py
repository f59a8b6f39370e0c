"""Worker processes: ``--workers N`` runs N of them on this host against one storage.

Each worker is ``python -m studies.workers SETTINGS_JSON N_TRIALS INDEX``: it
loads the study (already created, with its MLflow store and parent run, by
the runner) and runs its share of the missing trials. Workers on other
machines are the same ``study`` command pointed at the same PostgreSQL storage
and tracking server.
"""

from __future__ import annotations

import os
import sys

from harness import processes
from harness.errors import HarnessError
from studies.optimize import optimize
from studies.settings import StudySettings


def run_workers(settings: StudySettings, shares: list[int], log=print) -> list[int]:
    """Start one worker per entry of ``shares`` (its trial count) and wait for all; return
    the exit codes. A failed worker's trial is marked FAIL afterwards; a re-run replaces it."""
    return processes.run_workers([[sys.executable, "-m", "studies.workers", settings.to_json(), str(n), str(i)]
                                  for i, n in enumerate(shares)], log=log)


def main(argv: list[str]) -> int:
    settings, n_trials, index = StudySettings.from_json(argv[0]), int(argv[1]), int(argv[2])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        optimize(settings, n_trials, worker=index, log=lambda text: print(f"[worker {index}] {text}", flush=True))
    except HarnessError as exc:
        print(f"[worker {index}] error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
