"""What this machine measured once: its key, and values remembered under it in the cache.

The kernel forms (``kernels``) and the precision (``precision``) are chosen by
timing both options on the machine at hand. A timing is taken once per key
(this CPU or GPU, its cores, the TensorFlow version, what was timed) and kept
in ``$HARNESS_CACHE_DIR/<name>/choices.json``; a read-only or damaged file
only costs timing again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.data import cache_root

_memory: dict[str, dict[str, Any]] = {}  # file name -> what was read or measured in this process


@functools.cache
def machine_key() -> str:
    """This CPU, its cores and the TensorFlow version: the key of timing caches (kernels, precision)."""
    import tensorflow as tf

    model = platform.processor() or "cpu"
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model} x{cores} tf{tf.__version__}"


def choices_file(name: str) -> Path:
    return cache_root() / name / "choices.json"


def remembered(name: str, key: str, measure: Callable[[], Any]) -> Any:
    """The value stored under ``key`` in ``name``'s choices file, else ``measure()``, stored there.

    The file is read once per process; a value measured here is written back
    with every other key kept (written beside it and renamed into place).
    """
    memory = _memory.setdefault(name, {})
    if key not in memory:
        path = choices_file(name)
        with contextlib.suppress(OSError, ValueError):
            memory.update(json.loads(path.read_text()))
        if key not in memory:
            memory[key] = measure()
            with contextlib.suppress(OSError):  # a read-only cache only costs the timing next time
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(f".{path.name}.{os.getpid()}")
                partial.write_text(json.dumps(memory, indent=1, sort_keys=True))
                os.replace(partial, path)
    return memory[key]
