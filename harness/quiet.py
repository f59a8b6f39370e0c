"""TensorFlow without its start-up noise: what a command prints is the command's.

TensorFlow's C++ core prints lines while it loads (oneDNN, CUDA drivers,
cuInit, absl's "before InitializeLog" warning), before any setting can turn
them off, and logs graph-optimiser errors (``remapper failed``) in the middle
of training that change nothing. ``quiet_tensorflow()`` silences both for
this process (the start-up lines ignore ``TF_CPP_MIN_LOG_LEVEL``, so they are
hidden whatever it says); ``-v`` on the command line keeps them.

The graph-optimiser lines are ``LOG(ERROR)`` of grappler's meta-optimiser
(``meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: Mutation::Apply
error: fanout '.../LeakyReluGrad' exist for missing node '.../BiasAdd'``):
the remapper fuses a convolution, its bias and its LeakyReLU into one op,
finds the LeakyReLU's gradient still reading the bias-add it removed, and
the meta-optimiser keeps that graph as it was before the remapper's pass
(the numbers are unaffected; only that pass's fusions are lost). On CPUs
a LeakyReLU, as a layer or inline in a convolution, now differentiates from
its output (``harness.train.kernels.leaky_relu``), which removes that cause;
the filter stays for grappler's other lines and for models the harness did
not build. Being errors, they pass
``TF_CPP_MIN_LOG_LEVEL=2`` (which hides only INFO and WARNING), and absl has
no per-file level for them. So where the user's level would let them
through, the process's stderr goes through a small filter process that drops
grappler's lines and passes every other byte on; a process of its own, so
nothing written just before a crash is lost with the crashing process.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.abc
import importlib.util
import os
import subprocess
import sys

# A line logged from one of TensorFlow's graph-optimiser (grappler) source files, in absl's
# format (``E0000 00:00:1796.5 30229 meta_optimizer.cc:967] ...``) or with a source path.
GRAPH_OPTIMISER_LINE = (rb"^[IWEF]\d{4} [\d:.]+\s+\d+ (?:meta_optimizer|remapper|loop_optimizer|"
                        rb"arithmetic_optimizer|constant_folding|generic_layout_optimizer|layout_optimizer|"
                        rb"dependency_optimizer|function_optimizer|model_pruner|memory_optimizer|"
                        rb"shape_optimizer|implementation_selector|auto_mixed_precision|"
                        rb"scoped_allocator_optimizer|pin_to_host_optimizer)\.cc:\d+\]|grappler/optimizers/"
                        # and, on a machine without a GPU, the CUDA driver's failed start (an ERROR too)
                        rb"|^E\d{4} [\d:.]+\s+\d+ cuda_platform\.cc:\d+\] failed call to cuInit")
_FILTER = f"""
import os, re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # the trainer handles Ctrl-C; this must outlive it
drop = re.compile({GRAPH_OPTIMISER_LINE!r})
logged = re.compile(rb"^[IWEF]\\d")  # how an absl log line starts: held until its end is seen
out, pending = sys.stdout.buffer, b""
while chunk := os.read(0, 65536):
    # A progress bar redraws with "\\r" and no newline: each piece goes on as soon as it is
    # known not to be a graph-optimiser line, so the bar moves as it would unfiltered.
    *pieces, pending = re.split(rb"(?<=[\\r\\n])", pending + chunk)
    if pending and not logged.match(pending):
        pieces, pending = pieces + [pending], b""
    out.write(b"".join(p for p in pieces if not drop.search(p)))
    out.flush()
if pending and not drop.search(pending):
    out.write(pending)
    out.flush()
"""


def quiet_tensorflow() -> None:
    """Load TensorFlow quietly whenever something first imports it (a no-op once it is loaded).

    Its start-up lines are hidden whatever ``TF_CPP_MIN_LOG_LEVEL`` says (they
    ignore it); a level of the user's own is kept for what TensorFlow logs
    later, less grappler's lines (see the module docstring); unset, it is 3.
    """
    if "tensorflow" in sys.modules:
        return
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    if level is None:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    elif level.strip() not in ("3", "4"):  # a level that lets grappler's ERROR lines through
        filter_graph_optimiser_lines()
    sys.meta_path.insert(0, _QuietTensorFlow())


def filter_graph_optimiser_lines() -> None:
    """Pass this process's stderr (fd 2, children included) through a filter dropping grappler's lines.

    Everything else passes unchanged, line by line. At exit stderr is put back
    and the filter drains what is left. Does nothing where it cannot start.
    """
    read, write = os.pipe()
    original = os.dup(2)
    try:
        filter_process = subprocess.Popen([sys.executable, "-S", "-c", _FILTER], stdin=read, stdout=original,
                                          start_new_session=True)
    except OSError:
        for fd in (read, write, original):
            os.close(fd)
        return
    os.close(read)
    sys.stderr.flush()
    os.dup2(write, 2)
    os.close(write)
    atexit.register(_stop_filter, filter_process, original)


def _stop_filter(filter_process: subprocess.Popen, original: int) -> None:
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os.dup2(original, 2)  # our last handle on the pipe: the filter reads to its end and exits
    os.close(original)
    with contextlib.suppress(subprocess.TimeoutExpired):
        filter_process.wait(timeout=5)


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
