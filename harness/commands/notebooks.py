"""The harness's step against the notebooks' loop: ``bench`` (speed) and ``fidelity`` (results)."""

from __future__ import annotations

import argparse
import inspect
import json

from harness import flags
from harness.commands.common import add_data_root, names
from harness.config import PRECISIONS, RunConfig
from harness.notebooks.bench import BenchSettings, all_variants, check_benchmark, run_benchmark, table
from harness.notebooks.fidelity import ALL, RUN_DEFAULTS, RUN_FLAGS, FidelitySettings, notebook_presets, run_fidelity

# bench's defaults are run_benchmark's own.
_BENCH = inspect.signature(run_benchmark).parameters


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="training throughput: the harness's step against the notebooks' loop")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--variants", default=",".join(_BENCH["variants"].default),
                   help="comma-separated variant names, or 'all': every preset and every single-axis change "
                        "of the baseline")
    flags.add_flags(p, BenchSettings)
    p.add_argument("--compare-xla", action="store_true", help="also time the step with XLA the other way")
    p.add_argument("--torch", metavar="PYTHON", help="also time the same variants and step in PyTorch, run by "
                                                     "this python (an environment with torch; see "
                                                     "benchmarks/torch_reference.py)")
    flags.add_flags(p, RunConfig, only=["batch_size", "width", "xla", "steps_per_execution"])
    p.add_argument("--precision", choices=(*PRECISIONS, "all"), default=_BENCH["precision"].default,
                   help="what the harness's step trains in, as for run (default: %(default)s); all: float32 and "
                        "bfloat16 side by side in one alternated run, with what auto picks")
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    variants = all_variants() if args.variants == "all" else tuple(names(args.variants))
    check_benchmark(variants, batch=args.batch_size, steps=args.steps, repeats=args.repeats, width=args.width,
                    xla=args.xla, steps_per_execution=args.steps_per_execution)
    result = run_benchmark(variants, batch=args.batch_size, steps=args.steps, repeats=args.repeats,
                           width=args.width, xla=args.xla, steps_per_execution=args.steps_per_execution,
                           compare_xla=args.compare_xla, torch=args.torch, precision=args.precision,
                           log=(lambda *_: None) if args.json else print)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"\n{table(result)}\n\npeak: {result['peak_gflops'] and round(result['peak_gflops'])} GFLOP/s "
              f"({result['peak_how']}); a large float32 matrix product here: {result['gemm_gflops']:.0f} GFLOP/s"
              + (f"; {result['torch']}" if "torch" in result else ""))
    return 0


def add_fidelity(sub) -> None:
    p = sub.add_parser("fidelity", help="train a variant with the harness's step and the notebooks' loop "
                                        "over seeds, and compare them",
                       description="Train a variant with the harness's compiled step and with the notebooks' "
                                   "loop (same data, order, batch size and initial weights), several seeds "
                                   "each; compare real_acc, fake_acc, d_loss, g_loss per epoch and the final "
                                   "FID/KID. Writes fidelity.md, .json and .png to --out; a re-run reuses "
                                   "each finished (loop, seed).")
    flags.add_flags(p, RunConfig, only=RUN_FLAGS, defaults=RUN_DEFAULTS,
                    help={"epochs": f"epochs per (loop, seed) (default: {RUN_DEFAULTS['epochs']})",
                          "variant": f"the variant both loops train, or '{ALL}': every preset with a notebook "
                                     "loop, each in --out/<preset>"})
    flags.add_flags(p, FidelitySettings)
    add_data_root(p)
    p.set_defaults(handler=cmd_fidelity)


def cmd_fidelity(args: argparse.Namespace) -> int:
    every = args.variant == ALL  # each preset with a notebook loop, in its own folder under --out
    for variant in (notebook_presets() if every else [args.variant]):
        run = flags.build(RunConfig, {**flags.values(args, RunConfig), "variant": variant})
        settings = flags.values(args, FidelitySettings)
        if every:
            settings["out"] = f"{settings['out']}/{variant}"
        result = run_fidelity(flags.build(FidelitySettings, settings, run=run))
        with open(result["files"][1]) as table:
            print(table.read())
        print("\n".join(["written:", *(f"  {path}" for path in result["files"])]))
    return 0
