"""``python -m harness serve``: MLflow's model server on a logged generator.

The model itself (what answers ``/invocations``) is ``harness/serving.py``;
this module starts the server around it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from harness.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"


def serve_command(model_uri: str, host: str = DEFAULT_HOST, port: int = 5001, workers: int = 1,
                  timeout: int = 60) -> list[str]:
    """The ``mlflow models serve`` command line that serves ``model_uri`` from this environment."""
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--host", host,
            "--port", str(port), "--workers", str(workers), "--timeout", str(timeout),
            "--env-manager", "local"]


def serve(model_uri: str, tracking_uri: str, host: str = DEFAULT_HOST, port: int = 5001,
          workers: int = 1, log=print) -> int:
    """Become MLflow's model server on ``model_uri`` (POSIX: exec, so signals reach it directly).

    Checks the port first so that a busy port is one clear line, not a uvicorn
    traceback. Returns the server's exit code where exec is not available.
    """
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} must be between 1 and 65535.")
    if workers < 1:
        raise ConfigError(f"--workers {workers} must be at least 1.")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port "
                          "or --host.") from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        log(f"warning: binding {host}: anyone who can reach this machine can call the model "
            "(there is no authentication).")
    env = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", **os.environ,
           "MLFLOW_TRACKING_URI": tracking_uri}
    command = serve_command(model_uri, host, port, workers)
    log(f"serving {model_uri} at http://{host}:{port}/invocations (Ctrl-C stops it)")
    if os.name != "posix":
        try:
            return subprocess.run(command, env=env).returncode
        except KeyboardInterrupt:
            return 130
    sys.stdout.flush()  # exec discards what is still buffered
    os.execve(command[0], command, env)  # replaces this process: never returns
