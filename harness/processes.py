"""Worker processes on this machine: start several commands and wait for them all."""

from __future__ import annotations

import os
import subprocess


def run_workers(commands: list[list[str]], log=print) -> list[int]:
    """Start each command as a worker process and wait for all; return their exit codes.

    Each worker gets one thread per math library (``OMP_NUM_THREADS=1`` unless
    set), since they share the cores. A worker that fails is reported, not
    fatal. Interrupting this process stops the workers (each ends its run
    KILLED, keeping its checkpoint).
    """
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    procs = [subprocess.Popen(command, env=env) for command in commands]
    log(f"started {len(procs)} workers: pids {', '.join(str(p.pid) for p in procs)}")
    try:
        codes = [p.wait() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait()
    for i, code in enumerate(codes):
        if code != 0:
            log(f"worker {i} (pid {procs[i].pid}) exited with code {code}; see its output above")
    return codes
