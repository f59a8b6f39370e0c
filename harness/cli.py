"""The command line, ``python -m harness <command>``: parse, then call the library.

Each command is a ``_add_<command>`` function that declares its flags and a
``cmd_<command>`` handler that calls library functions tests call directly.
TensorFlow is imported only inside handlers that train or evaluate, so
``--help``, ``variants`` and ``datasets`` answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from harness.config import DEFAULT_TRACKING_URI, RunConfig
from harness.errors import HarnessError

Handler = Callable[[argparse.Namespace], int | None]


# --- shared flags ---------------------------------------------------------------------
def _tracking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help="MLflow tracking store (default: %(default)s; artifacts under ./mlruns)")


def _data_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", help="folder holding the datasets (default: $HARNESS_DATA_DIR, "
                                            "else ~/.cache/harness/data)")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be in [0, 1)")
    return value


# --- run ------------------------------------------------------------------------------
def _add_run(sub) -> None:
    p = sub.add_parser("run", help="train a variant on a dataset, logged to MLflow",
                       description="Train one GAN variant on one dataset and log it to MLflow.")
    p.add_argument("--variant", required=True, help="a preset or grammar name (see `harness variants`)")
    p.add_argument("--dataset", required=True, help="e.g. horses, cifar10:horses, folder:/path/to/eagles")
    p.add_argument("--epochs", type=int, help="default: the class's published epochs (horses 50, ...)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-images", type=int, help="use only the first N training images")
    p.add_argument("--image-size", type=int, default=32, choices=(28, 32, 64))
    p.add_argument("--experiment", help="MLflow experiment (default: the dataset's class name)")
    p.add_argument("--run-name")
    _tracking(p)
    _data_root(p)
    g = p.add_argument_group("optimisation (override the variant's)")
    g.add_argument("--g-lr", type=_positive_float, help="generator learning rate")
    g.add_argument("--d-lr", type=_positive_float, help="discriminator learning rate")
    g.add_argument("--g-beta1", type=_fraction, help="generator Adam beta_1")
    g.add_argument("--d-beta1", type=_fraction, help="discriminator Adam beta_1")
    g.add_argument("--label-smoothing", type=_fraction, help="one-sided: real labels become 1 - s")
    g.add_argument("--width", type=_positive_float, default=1.0, help="multiply every layer width")
    e = p.add_argument_group("evaluation")
    e.add_argument("--eval-every", type=int, default=0, help="FID/KID/IS every K epochs and at the end")
    e.add_argument("--eval-samples", type=int, default=5000)
    e.add_argument("--backbone", default="auto", choices=("auto", "inception", "cifar10_classifier"))
    e.add_argument("--inception", help="path to classify_image_graph_def.pb or inception-2015-12-05.tgz")
    r = p.add_argument_group("checkpoints and speed")
    r.add_argument("--resume", nargs="?", const="latest", metavar="RUN_ID",
                   help="continue a run from its last checkpoint (default: the latest unfinished one)")
    r.add_argument("--checkpoint-dir", default="checkpoints")
    r.add_argument("--keep-checkpoints", type=int, default=2)
    r.add_argument("--xla", default="auto", choices=("auto", "on", "off"))
    r.add_argument("--steps-per-execution", type=int, default=1)
    r.add_argument("--sample-every", type=int, default=1, help="sample grid every K epochs")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_run)


def run_config(args: argparse.Namespace) -> RunConfig:
    """The RunConfig that ``run`` flags describe."""
    overrides = {key: value for key, value in (
        ("g_lr", args.g_lr), ("d_lr", args.d_lr), ("g_beta_1", args.g_beta1),
        ("d_beta_1", args.d_beta1), ("label_smoothing", args.label_smoothing)) if value is not None}
    return RunConfig(
        variant=args.variant, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
        seed=args.seed, max_images=args.max_images, image_size=args.image_size,
        tracking_uri=args.tracking_uri, experiment=args.experiment, run_name=args.run_name,
        checkpoint_dir=args.checkpoint_dir, keep_checkpoints=args.keep_checkpoints, width=args.width,
        overrides=overrides, eval_every=args.eval_every, eval_samples=args.eval_samples,
        backbone=args.backbone, inception=args.inception, xla=args.xla,
        steps_per_execution=args.steps_per_execution, progress=not args.no_progress,
        sample_every=args.sample_every,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from harness import train

    config = run_config(args)
    resume = args.resume
    if resume == "latest":
        resume = train.find_resumable(config)
    result = train.run(config, resume=resume)
    print(f"run {result.run_id} {result.status} after {result.epochs_done} epochs; "
          f"generator: {result.model_uri}")
    return 0


# --- variants -------------------------------------------------------------------------
def _add_variants(sub) -> None:
    p = sub.add_parser("variants", help="list presets and the variant name grammar")
    p.add_argument("--json", action="store_true", help="a JSON list of {name, axes..., source}")
    p.add_argument("--all", action="store_true", help="also every grammar combination of the axes")
    p.set_defaults(handler=cmd_variants)


def cmd_variants(args: argparse.Namespace) -> int:
    from variants import AXES, GRAMMAR_HELP, PRESETS, canonical_name, resolve

    specs = list(PRESETS.values())
    if args.all:
        import itertools

        names = ["_".join(combo) for combo in itertools.product(
            ("nobn", "bn", "bng", "bnd"), ("nodrop", "drophead", "dropblocks"), ("kernel3", "kernel4"),
            ("layer", "inline"), ("split", "mixed"))]
        specs += [resolve(name) for name in names]
    if args.json:
        rows = [{"name": s.name, **s.axes(), "canonical": canonical_name(s),
                 "preset": s.name in PRESETS, "image_size": s.image_size, "channels": s.channels,
                 "source": s.source} for s in specs]
        print(json.dumps(rows, indent=2))
        return 0
    print("Presets (the published notebooks' architectures):\n")
    for spec in PRESETS.values():
        axes = ", ".join(f"{k}={v}" for k, v in spec.axes().items())
        print(f"  {spec.name}\n    {axes}\n    {spec.source}\n")
    print("Names over the axes (" + ", ".join(AXES) + "):\n")
    print(GRAMMAR_HELP)
    if args.all:
        for spec in specs[len(PRESETS):]:
            print(f"  {spec.name}")
    return 0


# --- datasets -------------------------------------------------------------------------
def _add_datasets(sub) -> None:
    p = sub.add_parser("datasets", help="list known datasets, where they are looked for and what is here",
                       description="Every known dataset: its source, whether it is available on this "
                                   "machine, its image count and where it is looked for.")
    p.add_argument("--json", action="store_true", help="a JSON list of {name, source, spec, available, count, where}")
    _data_root(p)
    p.set_defaults(handler=cmd_datasets)


def cmd_datasets(args: argparse.Namespace) -> int:
    from harness.data import list_datasets
    from harness.data.listing import format_table

    rows = list_datasets(args.data_root)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


# --- entry point ------------------------------------------------------------------------
COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_run, _add_variants, _add_datasets)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="Train DCGAN variants per image class, track them in MLflow, compare them.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (errors for people, never a traceback)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "data_root", None):
        os.environ["HARNESS_DATA_DIR"] = args.data_root
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.handler(args) or 0
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: the run is marked KILLED and its checkpoint kept; continue it with --resume",
              file=sys.stderr)
        return 130
