"""Mixed precision: every preset trains in bfloat16, auto decides as documented, float32 comes out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from harness.config import RunConfig
from harness.errors import ConfigError
from harness.train import measured, precision
from variants import PRESETS, resolve


def _images(spec, n=8):
    return np.random.default_rng(0).integers(0, 256, (n, *spec.image_shape), dtype=np.uint8)


def test_every_preset_takes_a_bfloat16_step_with_finite_losses_and_float32_outputs(monkeypatch):
    import keras
    import tensorflow as tf

    from harness.train.gan import GAN

    monkeypatch.setenv("HARNESS_CPU_KERNELS", "fast")  # the reformulated convolutions and fused BatchNorm too
    for name in PRESETS:
        spec = resolve(name).scaled(0.125)
        gan = GAN(spec, seed=0, precision="bfloat16")
        gan.compile(jit_compile=False)
        history = gan.fit(tf.data.Dataset.from_tensors(_images(spec)), epochs=1, verbose=0).history
        assert all(np.isfinite(v[-1]) for v in history.values()), (name, history)
        hidden = [layer for layer in gan.generator.layers[1:-1] if layer.weights]
        assert hidden and all(layer.compute_dtype == "bfloat16" for layer in hidden), name
        assert all(v.dtype == "float32" for v in gan.generator.weights + gan.discriminator.weights), name
        assert gan.sample(tf.zeros((2, spec.latent_dim))).dtype == tf.float32
        assert gan.discriminator(tf.zeros((2, *spec.image_shape))).dtype == tf.float32
    assert keras.config.dtype_policy().name == "float32"  # nothing leaks to the next model
    assert GAN(resolve("animals_baseline").scaled(0.125)).generator.layers[1].compute_dtype == "float32"


def test_a_bfloat16_generator_saves_and_reloads_as_plain_float32_keras(tmp_path):
    import keras
    import tensorflow as tf

    from harness.train.gan import GAN

    spec = resolve("cifar_bn").scaled(0.125)
    gan = GAN(spec, seed=0, precision="bfloat16")
    gan.compile(jit_compile=False)
    gan.fit(tf.data.Dataset.from_tensors(_images(spec)), epochs=1, verbose=0)
    generator = gan.float32_generator()
    assert generator is not gan.generator
    generator.save(tmp_path / "g.keras")
    loaded = keras.saving.load_model(tmp_path / "g.keras", compile=False, safe_mode=True)
    assert {layer.dtype_policy.name for layer in loaded.layers} == {"float32"}
    z = np.random.default_rng(1).standard_normal((4, spec.latent_dim)).astype(np.float32)
    images = loaded.predict(z, verbose=0)
    assert images.dtype == np.float32
    np.testing.assert_allclose(images, gan.sample(z).numpy(), atol=0.05)  # bfloat16 rounding only
    assert not np.allclose(images, GAN(spec, seed=5).sample(z).numpy(), atol=0.05)  # the trained weights


def test_float16_trains_with_loss_scaling():
    import keras
    import tensorflow as tf

    from harness.train.gan import GAN

    spec = resolve("animals_baseline").scaled(0.125)
    gan = GAN(spec, seed=0, precision="float16")
    gan.compile(jit_compile=False)
    assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    history = gan.fit(tf.data.Dataset.from_tensors(_images(spec)), epochs=1, verbose=0).history
    assert np.isfinite(history["g_loss"][-1]) and np.isfinite(history["d_loss"][-1])


# --- auto ------------------------------------------------------------------------------------
@pytest.fixture
def passed(tmp_path, monkeypatch):
    """animals_baseline passed the equivalence study; no GPU; the probe is allowed."""
    results = tmp_path / "precision_equivalence.json"
    results.write_text(json.dumps({"variants": {"animals_baseline": {"verdict": "equivalent"},
                                                "cifar_bn": {"verdict": "inconclusive"}}}))
    monkeypatch.setattr(precision, "EQUIVALENCE_FILE", results)
    monkeypatch.setattr(precision, "_gpu", lambda: None)
    monkeypatch.setattr(measured, "_memory", {})
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(precision.PROBE_ENV, raising=False)
    return results


def test_auto_keeps_float32_for_a_variant_not_shown_equivalent(passed):
    spec = resolve("cifar_bn")
    chosen = precision.resolve("auto", spec, "cifar_bn", 32)
    assert chosen.name == "float32" and "has not passed the float32-vs-bfloat16 equivalence" in chosen.reason
    assert chosen.params() == {"precision": "float32", "precision_requested": "auto"}
    assert precision.resolve("bfloat16", spec, "cifar_bn", 32).name == "bfloat16"  # asked for: trained so


def test_auto_on_a_cpu_without_bfloat16_instructions_or_with_the_probe_off_is_float32(passed, monkeypatch):
    spec = resolve("animals_baseline")
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    monkeypatch.setattr(precision, "_time_policies", lambda *a: pytest.fail("no probe without bf16"))
    chosen = precision.resolve("auto", spec, "animals_baseline", 32)
    assert chosen.name == "float32" and "no bfloat16 instructions" in chosen.reason
    monkeypatch.setenv(precision.PROBE_ENV, "off")
    assert "HARNESS_PRECISION_PROBE=off" in precision.resolve("auto", spec, "animals_baseline", 32).reason


def test_auto_takes_bfloat16_where_the_cached_probe_found_it_fast_enough(passed, monkeypatch, tmp_path):
    calls = []
    speedups = {32: 1.5, 64: 1.1}

    def timed(spec, batch):
        calls.append(batch)
        return {"float32_step_s": speedups[batch], "bfloat16_step_s": 1.0, "speedup": speedups[batch]}

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    monkeypatch.setattr(precision, "_time_policies", timed)
    spec = resolve("animals_baseline")
    fast = precision.resolve("auto", spec, "animals_baseline", 32, log=lambda *_: None)
    assert fast.name == "bfloat16" and fast.policy == "mixed_bfloat16" and "1.50x" in fast.reason
    slow = precision.resolve("auto", spec, "animals_baseline", 64, log=lambda *_: None)
    assert slow.name == "float32" and "1.10x" in slow.reason
    monkeypatch.setattr(measured, "_memory", {})  # a new process reads the cache file
    assert precision.resolve("auto", spec, "animals_baseline", 32).name == "bfloat16"
    assert calls == [32, 64]
    cached = json.loads((tmp_path / "cache" / "precision" / "choices.json").read_text())
    assert sorted(v["speedup"] for v in cached.values()) == [1.1, 1.5]


def test_the_probe_times_both_precisions_on_this_machine():
    timing = precision._time_policies(resolve("animals_baseline").scaled(0.0625), 8)
    assert timing["float32_step_s"] > 0 and timing["bfloat16_step_s"] > 0
    assert timing["speedup"] == pytest.approx(timing["float32_step_s"] / timing["bfloat16_step_s"])


def test_auto_on_a_gpu_follows_its_compute_capability(passed, monkeypatch):
    spec = resolve("animals_baseline")
    monkeypatch.setattr(precision, "_gpu", lambda: ("NVIDIA H100", (9, 0)))
    assert precision.resolve("auto", spec, "animals_baseline", 32).name == "bfloat16"
    monkeypatch.setattr(precision, "_gpu", lambda: ("Tesla T4", (7, 5)))
    chosen = precision.resolve("auto", spec, "animals_baseline", 32)
    assert chosen.name == "float32" and "7.5" in chosen.reason


def test_precision_is_a_run_setting_with_checked_choices():
    assert RunConfig(variant="bn", dataset="horses").precision == "auto"
    with pytest.raises(ConfigError, match="--precision 'half' must be one of auto, float32, bfloat16, float16"):
        RunConfig(variant="bn", dataset="horses", precision="half")


# --- a run: params, checkpoint, resume --------------------------------------------------------
def test_a_bfloat16_run_logs_its_precision_and_refuses_to_resume_in_float32(cifar10_root, tracking_uri, tmp_path):
    from harness.store.tracking import client
    from harness.train import checkpoints
    from harness.train import run as train

    config = RunConfig(variant="animals_baseline", dataset="horses", epochs=1, batch_size=32, max_images=64,
                       width=0.125, tracking_uri=tracking_uri, progress=False, precision="bfloat16",
                       checkpoint_dir=str(tmp_path / "ck"), clean_checkpoints=False, eval_every=0)
    lines = []
    result = train.run(config, log=lines.append)
    assert lines[0] == "precision: bfloat16 (requested)"
    params = client(tracking_uri).get_run(result.run_id).data.params
    assert params["precision"] == "bfloat16" and params["precision_requested"] == "bfloat16"
    assert np.isfinite(result.metrics["g_loss"])
    saved = checkpoints.list_checkpoints(tmp_path / "ck" / result.run_id)[-1]
    assert checkpoints.read_meta(saved)["precision"] == "bfloat16"
    with pytest.raises(ConfigError, match="cannot resume run .* in float32: it was trained in bfloat16"):
        train.run(config.replace(epochs=2, precision="float32"), resume=result.run_id, log=lambda *_: None)


# --- quiet ------------------------------------------------------------------------------------
GRAPPLER = ("E0000 00:00:1796594175.149979   30229 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: "
            "Mutation::Apply error: fanout 'x/LeakyReluGrad' exist for missing node 'x/BiasAdd'.")


def test_the_stderr_filter_drops_graph_optimiser_lines_and_passes_the_rest():
    code = (f"import os; from harness.quiet import filter_graph_optimiser_lines; filter_graph_optimiser_lines(); "
            f"os.write(2, b'before\\n' + {GRAPPLER.encode()!r} + b'\\nafter\\n'); print('out')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "out\n"
    assert out.stderr == "before\nafter\n"


def test_the_stderr_filter_passes_a_progress_bar_as_it_redraws():
    # A bar redraws with "\r" and no newline: a filter waiting for whole lines held it back until the
    # epoch's end, so it never moved on a terminal (and a watcher saw no mid-epoch progress).
    code = ("import os, sys, time; from harness.quiet import filter_graph_optimiser_lines; "
            "filter_graph_optimiser_lines(); os.write(2, b'\\repoch 1/2:  50%|#####'); "
            "sys.stdin.readline(); os.write(2, b'\\n')")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    deadline = time.monotonic() + 60
    while b"50%|#####" not in seen and time.monotonic() < deadline:
        seen += os.read(child.stderr.fileno(), 4096)  # arrives while the child still waits on stdin
    child.communicate(b"go\n", timeout=60)
    assert seen.endswith(b"\repoch 1/2:  50%|#####")


def test_a_bfloat16_training_prints_no_graph_optimiser_lines(cifar10_root, tracking_uri, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}  # the user's level, which lets TensorFlow's errors through
    command = [sys.executable, "-m", "harness", "run", "--variant", "animals_baseline", "--dataset", "horses",
               "--epochs", "1", "--max-images", "64", "--batch-size", "32", "--width", "0.125",
               "--precision", "bfloat16", "--tracking-uri", tracking_uri, "--checkpoint-dir", str(tmp_path / "ck"),
               "--no-progress", "--eval-every", "0"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "precision: bfloat16 (requested)" in out.stdout
    for text in ("remapper failed", "meta_optimizer", "grappler", "Loop optimizer",
                 "oneDNN", "cuInit", "absl"):  # start-up lines ignore the user's level: hidden too
        assert text not in out.stderr, out.stderr[-2000:]


# --- bench and the equivalence study, at plumbing size ------------------------------------------
def test_bench_precision_all_times_float32_and_bfloat16_side_by_side():
    from harness.notebooks.bench import run_benchmark, table

    result = run_benchmark(("animals_baseline",), batch=8, steps=1, repeats=1, width=0.0625, precision="all",
                           log=lambda *_: None)
    row = result["variants"]["animals_baseline"]
    assert result["precision"] == "all" and row["precision"] == "float32"
    assert row["harness_img_s"] > 0 and row["bfloat16_img_s"] > 0 and len(row["bfloat16_runs"]) == 1
    assert row["bfloat16_vs_float32"] == pytest.approx(row["bfloat16_img_s"] / row["harness_img_s"])
    assert row["auto"]["precision"] in ("float32", "bfloat16") and row["auto"]["reason"]
    assert "| bfloat16 img/s | x float32 | auto picks |" in table(result)
    json.dumps(result)


def test_the_equivalence_study_writes_what_auto_reads(tiny_backbone, cifar10_root, tmp_path, monkeypatch):
    from harness.train.equivalence import run_equivalence

    out = tmp_path / "precision_equivalence.json"
    out.write_text(json.dumps({"variants": {"cifar_bn": {"verdict": "equivalent", "canonical": "x"}}}))
    entry = run_equivalence("animals_baseline", "horses", seeds=2, epochs=1, batch_size=32, max_images=64,
                            width=0.125, eval_samples=20, backbone="cifar10_classifier", out=out,
                            runs=tmp_path / "runs", log=lambda *_: None)
    assert entry["verdict"] in ("equivalent", "different", "inconclusive")
    assert [c["metric"] for c in entry["headline"]] == ["kid", "real_acc (mean over epochs)",
                                                        "fake_acc (mean over epochs)"]
    assert all(c["n"] == 2 for c in entry["headline"]) and len(entry["per_epoch"]) == 2
    written = json.loads(out.read_text())["variants"]
    assert set(written) == {"cifar_bn", "animals_baseline"}  # merged, not replaced
    assert "## `animals_baseline`" in out.with_suffix(".md").read_text()
    assert len(list((tmp_path / "runs").glob("*.json"))) == 4
    monkeypatch.setattr(precision, "EQUIVALENCE_FILE", out)
    assert precision.passed_equivalence("animals_baseline") == (entry["verdict"] == "equivalent")
    assert precision.passed_equivalence("cifar_bn")
