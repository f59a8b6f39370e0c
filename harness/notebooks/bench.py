"""Throughput benchmark: the harness's training step against the notebooks' loop.

Everything is measured in one process, alternating the configurations
(harness, notebook, harness, notebook, ...) and reporting medians, because a
shared machine's speed drifts. "Images/s" counts real images consumed per
second, with one discriminator and one generator update per batch in both.

FLOPs are counted from the layers (multiply-adds x 2 of every Dense, Conv2D
and Conv2DTranspose, from their input and output shapes), for one forward
pass of G and of D, and then per pass of a training step, per real image:

- D update: D forward, input gradient and weight gradient (each costs one
  forward) on the real and on the fake batch: 6 D; the fakes: 1 G forward;
- G update: G forward, D forward, D's input gradient only (D's weights are
  not updated), G's input and weight gradients: 3 G + 2 D.

So ``4 G + 8 D`` per image (the first layers' input gradients, which nothing
needs, are counted: under 1%). BatchNorm, activations and the optimisers are
left out (memory-bound and small). The practical ceiling is measured too: a
large single-precision matrix product (NumPy's BLAS) in the same process.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import flags
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.flags import positive, setting
from harness.notebooks.reference_loop import NotebookTrainer, synthetic_images
from variants import resolve
from variants.spec import VariantSpec

# Keras, TensorFlow and the modules that load them (the builders, the pipeline, the
# GAN) are imported inside functions: the CLI reads run_benchmark's defaults from this
# module, and `--help`, `variants` and `datasets` must not load them.


def forward_flops(model) -> int:
    """FLOPs of one forward pass of ``model`` for one image/noise vector."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Dense":
            total += 2 * layer.input.shape[-1] * layer.units
        elif kind in ("Conv2D", "Conv2DTranspose"):
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            # A transposed convolution scatters each input pixel through the kernel:
            # its cost follows the input's spatial size, a convolution's the output's.
            h, w = (layer.input.shape[1:3] if kind == "Conv2DTranspose" else layer.output.shape[1:3])
            total += 2 * h * w * kh * kw * c_in * layer.filters
    return total


def step_flops(spec: VariantSpec) -> float:
    """Model FLOPs per trained image (see the module docstring)."""
    from variants.builders import build_discriminator, build_generator

    g = forward_flops(build_generator(spec))
    d = forward_flops(build_discriminator(spec))
    return 4.0 * g + 8.0 * d


def gemm_gflops(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a large float32 matrix product: what this CPU sustains in practice."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def cpu_peak_gflops() -> tuple[float | None, str]:
    """FP32 peak of this machine's CPU: cores x clock x FLOPs per cycle, and how it was found."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return None, "unknown (no /proc/cpuinfo)"
    flags = set(re.search(r"^flags\s*:(.*)$", info, re.M).group(1).split()) if "flags" in info else set()
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", info, re.M)]
    model = (re.search(r"^model name\s*:(.*)$", info, re.M) or [None, "?"])[1].strip()
    cores = len(os.sched_getaffinity(0))
    if not mhz:
        return None, f"unknown clock ({model})"
    if "avx512f" in flags:
        width, simd = 16, "AVX-512"
    elif "avx2" in flags and "fma" in flags:
        width, simd = 8, "AVX2+FMA"
    else:
        width, simd = 4, "SSE"
    per_cycle = 2 * 2 * width  # two FMA units, two FLOPs per lane
    ghz = max(mhz) / 1000
    peak = cores * ghz * per_cycle
    return peak, f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle ({simd}, 2 FMA units; {model})"


class HarnessTrainer:
    """The harness's compiled training step, fed from an in-memory tf.data pipeline."""

    def __init__(self, spec: VariantSpec, batch: int, xla: str, steps_per_execution: int = 1,
                 precision: str = "float32"):
        from harness.data.pipeline import repeated_batches
        from harness.train.gan import GAN

        self.gan = GAN(spec, seed=0, precision=precision)
        self.gan.compile(jit_compile={"auto": "auto", "on": True, "off": False}[xla],
                         steps_per_execution=steps_per_execution)
        self.batch = batch
        self.data = repeated_batches(synthetic_images(batch, spec, 8), batch)

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        self.gan.fit(self.data, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
        return steps * self.batch / (time.perf_counter() - start)


def sampling_rate(spec: VariantSpec, batch: int = 1000, repeats: int = 3) -> float:
    """Generator-only images/s in large compiled batches."""
    import tensorflow as tf

    from variants.builders import build_generator

    g = build_generator(spec)
    sample = tf.function(lambda z: g(z, training=False), jit_compile=False)
    z = tf.random.normal((batch, spec.latent_dim))
    sample(z).numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        sample(z).numpy()
        rates.append(batch / (time.perf_counter() - start))
    return statistics.median(rates)


class TorchReference:
    """The same variant and step in PyTorch (benchmarks/torch_reference.py), in a process of
    its own ``python`` (PyTorch is not a dependency), timed in the same alternation."""

    SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "torch_reference.py"

    def __init__(self, python: str, name: str, batch: int):
        import subprocess

        if not self.SCRIPT.is_file():
            raise ConfigError(f"--torch needs {self.SCRIPT} (run bench from a checkout of the repository).")
        env = {**os.environ, "PYTHONPATH": str(self.SCRIPT.parent.parent)}
        try:
            self.proc = subprocess.Popen([python, str(self.SCRIPT), "--serve", "--batch-size", str(batch)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        except OSError as exc:
            raise ConfigError(f"--torch {python!r} cannot be started ({exc.strerror}); pass the python of "
                              "an environment with PyTorch installed.") from None
        self.version = self._read()
        if not self.version.startswith("ready"):
            raise ConfigError(f"--torch {python!r} did not start the PyTorch reference: {self.version!r}.")
        self.name = name

    def _read(self) -> str:
        line = self.proc.stdout.readline().strip()
        if not line:
            raise ConfigError("the PyTorch reference process stopped (its error is above); check that "
                              "--torch names a python with torch and numpy installed.")
        return line

    def run(self, steps: int) -> float:
        self.proc.stdin.write(f"{self.name} {steps}\n")
        self.proc.stdin.flush()
        return float(self._read())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def all_variants() -> tuple[str, ...]:
    """``--variants all``: every preset, and every single-axis change of the baseline."""
    from variants import BASELINE, PRESETS
    from variants.grammar import grid_names

    return tuple(dict.fromkeys([*PRESETS, *grid_names(BASELINE.name, "one-at-a-time", None, "bench")]))


@dataclass(frozen=True)
class BenchSettings:
    """bench's own flags (the others are RunConfig's), declared and checked like every setting."""

    steps: int = setting(20, check=positive, help="training steps per timed repeat")
    repeats: int = setting(3, check=positive, help="alternating repeats per configuration")

    def __post_init__(self) -> None:
        flags.validate(self)


def check_benchmark(variants: tuple[str, ...], *, batch: int, steps: int, repeats: int, width: float, xla: str,
                    steps_per_execution: int) -> None:
    """Refuse what ``run_benchmark`` cannot time (a step count of 0 would loop forever), with the
    checks that ``run`` applies to the same flags. Raises ConfigError."""
    BenchSettings(steps=steps, repeats=repeats)
    flags.check_values(RunConfig, {"batch_size": batch, "width": width, "xla": xla,
                                   "steps_per_execution": steps_per_execution})
    for name in variants:  # a bad name or width fails before any timing
        resolve(name).scaled(width) if width != 1.0 else resolve(name)


def run_benchmark(variants: tuple[str, ...] = ("animals_baseline", "bn_kernel4"), *, batch: int = 128,
                  steps: int = 20, repeats: int = 3, width: float = 1.0, xla: str = "auto",
                  steps_per_execution: int = 1, compare_xla: bool = False, torch: str | None = None,
                  precision: str = "auto", log=print) -> dict[str, Any]:
    """Measure every variant; return the JSON-able result (see ``python -m harness bench --json``).

    ``torch``: the python of an environment with PyTorch, to time the same
    architecture and step there too (``torch_img_s``). ``precision``: what the
    harness's step trains in (auto, float32, bfloat16, float16; the row's
    ``precision`` says what auto resolved to), or ``all``: float32 as
    ``harness_img_s`` and bfloat16 as ``bfloat16_img_s`` in the same
    alternation, with what auto would pick (``auto``).
    """
    from harness.train.precision import resolve as resolve_precision

    check_benchmark(variants, batch=batch, steps=steps, repeats=repeats, width=width, xla=xla,
                    steps_per_execution=steps_per_execution)
    import keras
    import tensorflow as tf

    peak, peak_how = cpu_peak_gflops()
    gpus = tf.config.list_physical_devices("GPU")
    result: dict[str, Any] = {
        "peak_gflops": peak if not gpus else None,
        "peak_how": peak_how if not gpus else "GPU: not determined",
        "gemm_gflops": gemm_gflops(),
        "device": gpus[0].name if gpus else platform.processor() or "cpu",
        "batch_size": batch, "steps": steps, "repeats": repeats, "xla": xla,
        "steps_per_execution": steps_per_execution, "precision": precision,
        "tensorflow": tf.__version__, "keras": keras.__version__, "variants": {},
    }
    for name in variants:
        spec = resolve(name).scaled(width) if width != 1.0 else resolve(name)
        chosen = None if precision == "all" else resolve_precision(precision, spec, name, batch, log)
        trainers: dict[str, Any] = {
            "harness": HarnessTrainer(spec, batch, xla, steps_per_execution, chosen.name if chosen else "float32"),
            "notebook": NotebookTrainer(spec, batch)}
        if precision == "all":  # bfloat16 in the same alternation as float32
            trainers["harness_bfloat16"] = HarnessTrainer(spec, batch, xla, steps_per_execution, "bfloat16")
        if compare_xla:  # the same step with XLA the other way round
            other = "off" if xla == "on" else "on"
            trainers[f"harness_xla_{other}"] = HarnessTrainer(spec, batch, other, steps_per_execution)
        if torch:
            trainers["torch"] = TorchReference(torch, name, batch)
        try:
            for trainer in trainers.values():  # compile and warm up everything before timing
                trainer.run(2 * steps_per_execution if isinstance(trainer, HarnessTrainer) else 2)
            runs: dict[str, list[float]] = {key: [] for key in trainers}
            for _ in range(repeats):  # A B A B ...: drift hits every configuration alike
                for key, trainer in trainers.items():
                    runs[key].append(trainer.run(steps))
        finally:
            if torch:
                result["torch"] = trainers["torch"].version
                trainers["torch"].close()
        ours, theirs = runs["harness"], runs["notebook"]
        flops = step_flops(spec)
        h, n = statistics.median(ours), statistics.median(theirs)
        row = {
            "harness_img_s": h, "notebook_img_s": n, "speedup": h / n,
            "gflop_per_img": flops / 1e9, "achieved_gflops": h * flops / 1e9,
            "peak_fraction": (h * flops / 1e9 / peak) if peak and not gpus else None,
            "gemm_fraction": h * flops / 1e9 / result["gemm_gflops"],
            "sampling_img_s": sampling_rate(spec),
            "harness_runs": ours, "notebook_runs": theirs,
            "precision": chosen.name if chosen else "float32",
        }
        if precision == "all":
            auto = resolve_precision("auto", spec, name, batch, log)
            bf16 = statistics.median(runs["harness_bfloat16"])
            row.update(bfloat16_img_s=bf16, bfloat16_runs=runs["harness_bfloat16"], bfloat16_vs_float32=bf16 / h,
                       auto={"precision": auto.name, "reason": auto.reason})
        for key in trainers:
            if key.startswith("harness_xla_") or key == "torch":
                row[f"{key}_img_s"] = statistics.median(runs[key])
                row[f"{key}_runs"] = runs[key]
        if torch:
            row["vs_torch"] = h / row["torch_img_s"]
        result["variants"][name] = row
        extra = "".join(f", {k} {statistics.median(v):.1f} img/s" for k, v in runs.items()
                        if k.startswith("harness_xla") or k == "torch")
        if precision == "all":
            extra += f", bfloat16 {row['bfloat16_img_s']:.1f} img/s (x{row['bfloat16_vs_float32']:.2f})"
        log(f"{name}: harness {h:.1f} img/s ({row['precision']}), notebook {n:.1f} img/s, x{h / n:.2f}{extra}; "
            f"{flops / 1e9:.2f} GFLOP/img -> {row['achieved_gflops']:.1f} GFLOP/s"
            + (f" ({100 * row['peak_fraction']:.0f}% of peak)" if row["peak_fraction"] else ""))
    return result


def table(result: dict[str, Any]) -> str:
    """The result as a Markdown table, one row per variant."""
    torch = any("torch_img_s" in row for row in result["variants"].values())
    xla = next((k[:-6] for row in result["variants"].values() for k in row if k.startswith("harness_xla_")
                and k.endswith("_img_s")), None)
    head = ["variant", "GFLOP/img", "notebook img/s", "harness img/s", "x notebook"]
    head += ["PyTorch img/s", "x PyTorch"] if torch else []
    head += [f"{xla.replace('harness_', 'harness ').replace('_', ' ')} img/s"] if xla else []
    bf16 = any("bfloat16_img_s" in row for row in result["variants"].values())
    head += ["bfloat16 img/s", "x float32", "auto picks"] if bf16 else []
    # The harness's column in another precision than the notebooks' float32 says so
    sixteen = not bf16 and any(row.get("precision", "float32") != "float32" for row in result["variants"].values())
    head += ["harness precision"] if sixteen else []
    head += ["% of peak (float32)" if sixteen else "% of peak"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in result["variants"].items():
        cells = [f"`{name}`", f"{row['gflop_per_img']:.2f}", f"{row['notebook_img_s']:.1f}",
                 f"{row['harness_img_s']:.1f}", f"{row['speedup']:.2f}"]
        if torch:
            cells += [f"{row['torch_img_s']:.1f}", f"{row['vs_torch']:.2f}"]
        if xla:
            cells += [f"{row[f'{xla}_img_s']:.1f}"]
        if bf16:
            cells += [f"{row['bfloat16_img_s']:.1f}", f"{row['bfloat16_vs_float32']:.2f}", row["auto"]["precision"]]
        if sixteen:
            cells += [row.get("precision", "float32")]
        cells += [f"{100 * row['peak_fraction']:.0f}%" if row["peak_fraction"] else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
