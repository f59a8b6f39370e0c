"""Which arithmetic a run trains in: ``resolve(requested, spec, variant, batch)`` -> ``Precision``.

``--precision`` takes ``float32``, ``bfloat16``, ``float16`` or ``auto``. The
three names map to Keras dtype policies (``POLICIES``): under the mixed ones
the networks compute in 16 bits while their weights, BatchNorm statistics,
images, logits, losses and accuracies stay float32 (``variants.builders``,
``harness.train.gan``). float16 is loss-scaled and meant for GPUs.

``auto`` picks bfloat16 only where both hold, and float32 elsewhere:

- the variant passed the float32-vs-bfloat16 equivalence study: its verdict
  is ``equivalent`` in ``benchmarks/precision_equivalence.json``
  (``benchmarks/precision_equivalence.py`` writes it). A variant not (yet)
  shown to train the same stays float32, and the reason says so;
- this machine trains it faster in bfloat16. On a GPU that is compute
  capability 8.0 or newer (Ampere: bfloat16 tensor cores), without timing.
  On a CPU without bfloat16 instructions (avx512_bf16, amx_bf16) it is
  float32 without timing (emulated bfloat16 is slower). Otherwise a short
  probe times a few training steps under both policies, alternated, and
  bfloat16 is kept when it is at least ``MIN_SPEEDUP`` times as fast; the
  result is cached per machine, variant shape and batch size in
  ``$HARNESS_CACHE_DIR/precision/choices.json``, as the kernel choice is.
  ``HARNESS_PRECISION_PROBE=off`` skips the probe (float32).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.train.measured import choices_file, machine_key, remembered

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
MIN_SPEEDUP = 1.15  # bfloat16's images/s over float32's for auto to take it
PROBE_STEPS = 3  # training steps per timed probe round
PROBE_ROUNDS = 2  # float32, bfloat16, float32, bfloat16: drift hits both alike
AMPERE = (8, 0)  # the first compute capability with bfloat16 tensor cores
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs with bfloat16 arithmetic
PROBE_ENV = "HARNESS_PRECISION_PROBE"
EQUIVALENCE_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "precision_equivalence.json"


@dataclass(frozen=True)
class Precision:
    """The precision a run trains in (``name``), what was asked for, and why this one."""

    requested: str
    name: str  # float32, bfloat16 or float16
    reason: str

    @property
    def policy(self) -> str:
        """The Keras dtype policy name (``"mixed_bfloat16"``...)."""
        return POLICIES[self.name]

    def params(self) -> dict[str, str]:
        """The run's params: the resolved precision and the requested one."""
        return {"precision": self.name, "precision_requested": self.requested}

    def line(self) -> str:
        return f"precision: {self.name} ({self.reason})"


def resolve(requested: str, spec, variant: str, batch: int, log=print) -> Precision:
    """The precision ``requested`` (auto, float32, bfloat16 or float16) means here for ``variant``.

    ``spec`` is the run's resolved spec (what a probe trains) and ``batch``
    its batch size. ``log`` hears about a probe before it runs. See the module
    docstring for how ``auto`` decides.
    """
    if requested not in ("auto", *POLICIES):
        raise ConfigError(f"--precision {requested!r} must be one of auto, {', '.join(POLICIES)}.")
    if requested != "auto":
        gpu = _gpu()
        note = "; float16 is meant for GPUs, a CPU emulates it slowly" if requested == "float16" and not gpu else ""
        return Precision(requested, requested, f"requested{note}")
    if not passed_equivalence(variant):
        return Precision(requested, "float32", f"{variant} has not passed the float32-vs-bfloat16 equivalence "
                                               f"study ({_shown(EQUIVALENCE_FILE)}), so it stays float32")
    gpu = _gpu()
    if gpu is not None:
        name, capability = gpu
        shown = ".".join(map(str, capability)) if capability else "unknown"
        if capability and tuple(capability) >= AMPERE:
            return Precision(requested, "bfloat16", f"{name}, compute capability {shown}: bfloat16 tensor cores")
        return Precision(requested, "float32", f"{name}, compute capability {shown}: no bfloat16 tensor cores "
                                               "(Ampere, 8.0, or newer has them)")
    if os.environ.get(PROBE_ENV, "on") == "off":
        return Precision(requested, "float32", f"{PROBE_ENV}=off: no probe, float32")
    flags = cpu_bf16_flags()
    if not flags:
        return Precision(requested, "float32", "this CPU has no bfloat16 instructions "
                                               f"({' or '.join(BF16_CPU_FLAGS)}); it would emulate them slowly")
    timing = probe(spec, batch, log)
    speedup = timing["speedup"]
    how = f"{'+'.join(flags)}; bfloat16 trained {speedup:.2f}x as fast as float32 in this machine's probe"
    if speedup >= MIN_SPEEDUP:
        return Precision(requested, "bfloat16", how)
    return Precision(requested, "float32", f"{how}, under the {MIN_SPEEDUP}x it takes")


# --- which variants passed the equivalence study ------------------------------------------
def equivalence_results(path: Path | None = None) -> dict[str, Any]:
    """``benchmarks/precision_equivalence.json``'s variants (``{}`` when it is absent or unreadable)."""
    try:
        data = json.loads(Path(path or EQUIVALENCE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    variants = data.get("variants") if isinstance(data, dict) else None
    return variants if isinstance(variants, dict) else {}


def passed_equivalence(variant: str, path: Path | None = None) -> bool:
    """Whether ``variant`` (by name or canonical name) has the verdict ``equivalent`` in the study's results."""
    from variants import canonical_name
    from variants import resolve as resolve_variant

    results = equivalence_results(path)
    try:
        canonical = canonical_name(resolve_variant(variant))
    except Exception:  # a name the grammar no longer reads matches by name only
        canonical = variant
    return any(isinstance(r, dict) and r.get("verdict") == "equivalent"
               and (name == variant or r.get("canonical") == canonical) for name, r in results.items())


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path) if path.parent.name != "benchmarks" else f"benchmarks/{path.name}"


# --- this machine ----------------------------------------------------------------------------
@functools.cache
def cpu_bf16_flags() -> tuple[str, ...]:
    """This CPU's bfloat16 instruction sets among ``BF16_CPU_FLAGS`` (from /proc/cpuinfo)."""
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return tuple(f for f in BF16_CPU_FLAGS if f in present)
    return ()


def _gpu() -> tuple[str, tuple[int, ...] | None] | None:
    """The first visible GPU's (name, compute capability), or None on a CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = {}
    with contextlib.suppress(Exception):
        details = tf.config.experimental.get_device_details(gpus[0])
    return details.get("device_name", gpus[0].name), details.get("compute_capability")


def probe_key(spec, batch: int) -> str:
    """The cache key of a probe: this machine, the variant's shape (its params) and the batch size."""
    shape = hashlib.md5(json.dumps(spec.to_params(), sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{machine_key()} {'+'.join(cpu_bf16_flags()) or 'no-bf16'}|{spec.name}:{shape}|batch{batch}"


def probe(spec, batch: int, log=print) -> dict[str, float]:
    """Seconds per training step under float32 and bfloat16, and their ratio (``speedup``); cached."""
    key = probe_key(spec, batch)

    def timed() -> dict[str, float]:
        log(f"precision: timing float32 against bfloat16 on this machine ({PROBE_ROUNDS} x {PROBE_STEPS} "
            f"steps each; once, cached in {choices_file('precision')})")
        return _time_policies(spec, batch)

    return remembered("precision", key, timed)


def _time_policies(spec, batch: int) -> dict[str, float]:
    """Train ``spec`` on random images under both policies, alternated; the fastest round of each."""
    import tensorflow as tf

    from harness.train.gan import GAN

    images = tf.cast(tf.random.uniform((batch, *spec.image_shape), 0, 256, dtype=tf.int32), tf.uint8)
    data = tf.data.Dataset.from_tensors(images).repeat()
    gans = {}
    for name in ("float32", "bfloat16"):
        gans[name] = GAN(spec, seed=0, precision=name)
        gans[name].compile(jit_compile=False)
        gans[name].fit(data, epochs=1, steps_per_epoch=2, verbose=0)  # trace and warm up
    seconds: dict[str, list[float]] = {name: [] for name in gans}
    for _ in range(PROBE_ROUNDS):
        for name, gan in gans.items():
            start = time.perf_counter()
            gan.fit(data, epochs=1, steps_per_epoch=PROBE_STEPS, verbose=0)
            seconds[name].append((time.perf_counter() - start) / PROBE_STEPS)
    f32, bf16 = min(seconds["float32"]), min(seconds["bfloat16"])
    return {"float32_step_s": f32, "bfloat16_step_s": bf16, "speedup": f32 / bf16}
