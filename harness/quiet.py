"""TensorFlow without its start-up noise: what a command prints is the command's.

TensorFlow's C++ core prints lines while it loads (oneDNN, CUDA drivers,
cuInit, absl's "before InitializeLog" warning), before any setting can turn
them off, and logs graph-optimiser errors (``remapper failed``) in the middle
of training that change nothing. ``quiet_tensorflow()`` silences both for
this process; ``-v`` on the command line, or a ``TF_CPP_MIN_LOG_LEVEL`` of the
user's own, keeps them.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys


def quiet_tensorflow() -> None:
    """Load TensorFlow quietly whenever something first imports it (a no-op once it is loaded)."""
    if "tensorflow" in sys.modules or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.meta_path.insert(0, _QuietTensorFlow())


@contextlib.contextmanager
def _stderr_silenced():
    """Send the process's stderr (file descriptor 2) to /dev/null inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Loads TensorFlow, whenever something first imports it, with stderr silenced.

    Its C++ core prints start-up lines (oneDNN, CUDA drivers, absl's warning)
    while it loads, before any setting can turn them off; the rest of its
    logging obeys TF_CPP_MIN_LOG_LEVEL. Loading it only when needed keeps
    errors and `--help` fast.
    """

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with _stderr_silenced():
            self.loader.exec_module(module)
