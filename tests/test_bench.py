"""The benchmark's FLOP count against a hand count, and a tiny smoke run."""

from __future__ import annotations

import pytest

from variants import PRESETS, resolve


def test_forward_flops_match_a_hand_count():
    from harness.notebooks.bench import forward_flops, step_flops
    from variants.builders import build_discriminator, build_generator

    spec = PRESETS["animals_baseline"]
    macs_g = (100 * 4 * 4 * 256            # Dense
              + 4 * 4 * 9 * 256 * 128      # ConvT 4->8 (input pixels x k^2 x Cin x Cout)
              + 8 * 8 * 9 * 128 * 128      # ConvT 8->16
              + 16 * 16 * 9 * 128 * 128    # ConvT 16->32
              + 32 * 32 * 9 * 128 * 3)     # Conv2D to RGB
    macs_d = (32 * 32 * 9 * 3 * 64         # stride 1 (output pixels x k^2 x Cin x Cout)
              + 16 * 16 * 9 * 64 * 128
              + 8 * 8 * 9 * 128 * 128
              + 4 * 4 * 9 * 128 * 256
              + 4 * 4 * 256)               # Dense to one logit
    assert forward_flops(build_generator(spec)) == 2 * macs_g
    assert forward_flops(build_discriminator(spec)) == 2 * macs_d
    # D update: 2 x (forward + input grad + weight grad) of D, plus the fakes' G forward;
    # G update: G forward + 2 gradients, D forward + its input gradient.
    g, d = 2 * macs_g, 2 * macs_d
    assert step_flops(spec) == pytest.approx((2 * 3 * d + g) + (3 * g + 2 * d))
    assert step_flops(spec) / 1e9 == pytest.approx(1.0, abs=0.01)
    # Kernel 4 costs (4/3)^2 more in every strided convolution.
    assert step_flops(resolve("bn_kernel4")) > 1.5 * step_flops(spec)


def test_peak_is_cores_times_clock_times_width():
    from harness.notebooks.bench import cpu_peak_gflops

    peak, how = cpu_peak_gflops()
    if peak is None:
        pytest.skip(how)
    assert peak > 0 and "cores" in how and "GHz" in how


def test_bench_smoke_json():
    from harness.notebooks.bench import run_benchmark

    result = run_benchmark(("animals_baseline",), batch=8, steps=1, repeats=1, width=0.0625, log=lambda *_: None)
    row = result["variants"]["animals_baseline"]
    for key in ("harness_img_s", "notebook_img_s", "speedup", "gflop_per_img", "sampling_img_s"):
        assert row[key] > 0, key
    assert row["speedup"] == pytest.approx(row["harness_img_s"] / row["notebook_img_s"])
    assert "peak_gflops" in result and result["gemm_gflops"] > 0
    assert row["gemm_fraction"] == pytest.approx(row["achieved_gflops"] / result["gemm_gflops"])


def test_all_is_every_preset_and_every_single_change_of_the_baseline():
    from harness.notebooks.bench import all_variants
    from variants import PRESETS, resolve

    names = all_variants()
    assert set(PRESETS) <= set(names) and len(names) == len(set(names))
    baseline = resolve("animals_baseline").axes()
    for name in names[len(PRESETS):]:
        changed = {k for k, v in resolve(name).axes().items() if v != baseline[k]}
        assert len(changed) == 1, name


def test_the_table_has_a_row_per_variant_and_the_pytorch_columns_when_timed():
    from harness.notebooks.bench import table

    row = {"gflop_per_img": 1.0, "notebook_img_s": 100.0, "harness_img_s": 130.0, "speedup": 1.3,
           "peak_fraction": 0.5, "torch_img_s": 120.0, "vs_torch": 130 / 120}
    text = table({"variants": {"animals_baseline": row, "bn": {**row, "harness_img_s": 90.0}}})
    lines = text.splitlines()
    assert lines[0].startswith("| variant | GFLOP/img | notebook img/s | harness img/s | x notebook | PyTorch")
    assert len(lines) == 4 and "| `bn` |" in lines[3] and "| 1.08 |" in lines[2]


def test_the_table_names_the_harness_precision_when_it_is_not_float32():
    from harness.notebooks.bench import table

    row = {"gflop_per_img": 1.0, "notebook_img_s": 100.0, "harness_img_s": 150.0, "speedup": 1.5,
           "peak_fraction": 0.5, "precision": "float32"}
    assert "precision" not in table({"variants": {"animals_baseline": row}})
    lines = table({"variants": {"animals_baseline": row, "bn_kernel4": {**row, "precision": "bfloat16"}}}).splitlines()
    assert lines[0].endswith("| harness precision | % of peak (float32) |")
    assert lines[2].endswith("| float32 | 50% |") and lines[3].endswith("| bfloat16 | 50% |")


def test_a_python_without_the_reference_is_a_clear_error():
    from harness.errors import ConfigError
    from harness.notebooks.bench import TorchReference

    with pytest.raises(ConfigError, match="cannot be started"):
        TorchReference("/nonexistent/python", "animals_baseline", 4)
