"""Commands on a generator, logged or in a file: ``sample``, ``serve``, ``register``, ``export``, ``eval``.

A logged generator is named by ``--run-id``, ``--model`` or ``--best``
(``add_which_generator``); ``sample`` and ``eval`` also take a file,
``--generator PATH`` (``add_generator_file``).
"""

from __future__ import annotations

import argparse

from harness import flags
from harness.commands.common import add_data_root, add_tracking
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.generators import files as external
from harness.generators.export import FORMATS, check_out, export_logged, format_for
from harness.images import enlarged, grid, viewable_scale
from harness.store import tracking

# harness.generators.sampling and harness.store.model_server import MLflow, the evaluations SciPy and
# MLflow: they are imported in the handlers, so that `--help`, `variants` and
# `datasets` start without them.


# --- which generator ----------------------------------------------------------------------
def add_which_generator(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("which generator (one of)")
    g.add_argument("--run-id", help="the generator logged by this run")
    g.add_argument("--model", help="an MLflow model URI: models:/NAME/VERSION, models:/NAME@ALIAS, "
                                   "models:/NAME/ALIAS, models:/<model id>, runs:/ID/generator")
    g.add_argument("--best", action="store_true",
                   help="the FINISHED run with the lowest final FID in --dataset's experiment")
    flags.add_flags(g, RunConfig, only=["dataset", "experiment"],
                    help={"dataset": "with --best: the dataset whose experiment to search",
                          "experiment": "with --best: search this experiment instead"})
    g.add_argument("--eval-backbone", help="with --best: only FIDs from this backbone (e.g. inception)")
    g.add_argument("--eval-samples", type=int, help="with --best: only FIDs from this many generated images")
    add_tracking(parser)


def generator_uri(args: argparse.Namespace) -> str:
    """The MLflow model URI of the generator ``--run-id``, ``--model`` or ``--best`` names."""
    from harness.generators import sampling

    flags.check_flags({"--eval-samples": (args.eval_samples, flags.positive)})
    return sampling.model_uri(args.tracking_uri, run_id=args.run_id, model=args.model, best=args.best,
                              dataset=args.dataset, experiment=args.experiment,
                              backbone=args.eval_backbone, eval_samples=args.eval_samples)


def add_generator_file(parser: argparse.ArgumentParser, evaluated: bool = False) -> None:
    parser.add_argument("--generator", metavar="PATH",
                        help="a generator file (.h5 or .keras, e.g. saved by the notebooks) instead of a logged one")
    parser.add_argument("--output-range", choices=external.OUTPUT_RANGES, default="auto",
                        help="with --generator: its images' range, tanh ([-1, 1]) or sigmoid ([0, 1]) "
                             "(default: read from its output activation)")
    if evaluated:
        flags.add_flags(parser, RunConfig, only=["dataset", "experiment", "seed"], defaults={"seed": None},
                        help={"dataset": "with --generator: the real images to compare it with",
                              "experiment": "with --generator: log into this experiment (default: the "
                                            "dataset's class)",
                              "seed": "with --generator: seed of the generated images' noise (default: 0, "
                                      "as runs)"})


# --- sample ---------------------------------------------------------------------------------
def add_sample(sub) -> None:
    p = sub.add_parser("sample", help="images from a logged generator: a PNG grid, single PNGs, strips",
                       description="Draw images from a logged generator. Image k comes from seed "
                                   "--seed + k, the same image the model server returns for that seed.")
    add_which_generator(p)
    add_generator_file(p)
    p.add_argument("--n", type=int, help="how many images (default: 64; with --nearest, 8 rows)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first image (default: %(default)s)")
    p.add_argument("--out", default="samples.png", help="the grid PNG (default: %(default)s)")
    p.add_argument("--cols", type=int, help="grid columns (default: a square)")
    p.add_argument("--scale", type=int, help="enlarge the grid N times, each pixel an N x N block "
                                             "(default: images at least 64 px wide, 2 for 32x32)")
    p.add_argument("--out-dir", help="also write each image, at its own size, as DIR/seed_NNNNNN.png")
    p.add_argument("--interpolate", type=int, nargs=2, action="append", metavar=("SEED_A", "SEED_B"),
                   help="instead of the grid, a strip from SEED_A to SEED_B (repeat for more rows)")
    p.add_argument("--steps", type=int, default=8, help="images per interpolation strip")
    p.add_argument("--nearest", action="store_true",
                   help="with --run-id: instead of the grid, each sample beside its nearest training images in "
                        "the features of the backbone the run was evaluated with (a memorisation check)")
    p.add_argument("--nearest-k", type=int, default=3, metavar="K",
                   help="with --nearest: training images beside each sample (default: %(default)s)")
    flags.add_flags(p, RunConfig, only=["inception"],
                    help={"inception": "with --nearest: the Inception graph the run was evaluated with"})
    p.set_defaults(handler=cmd_sample)


def _viewable(image, images, scale: int | None):
    return enlarged(image, scale or viewable_scale(images.shape[1]))


def cmd_sample(args: argparse.Namespace) -> int:
    from harness.generators import sampling

    if args.cols is not None and args.cols < 1:
        raise ConfigError(f"--cols {args.cols} must be at least 1.")
    flags.check_flags({"--n": (args.n, flags.at_least(1)), "--seed": (args.seed, flags.at_least(0)),
                       "--steps": (args.steps, flags.between(2, 1000)),
                       "--nearest-k": (getattr(args, "nearest_k", None), flags.positive)})
    if args.scale is not None and not 1 <= args.scale <= 32:
        raise ConfigError(f"--scale {args.scale} must be from 1 to 32.")
    if args.nearest:
        return _sample_nearest(args)
    args.n = 64 if args.n is None else args.n
    seeds = sampling.seeds_from(args.seed, args.n) if not args.interpolate else []
    if args.generator:
        external.one_source(args.generator, run_id=args.run_id, model=args.model, best=args.best)
        uri, generator = args.generator, external.load(args.generator, args.output_range).model
    else:
        uri = generator_uri(args)
        generator = sampling.load_generator(args.tracking_uri, uri)
    if args.interpolate:
        images = sampling.interpolate(generator, [tuple(p) for p in args.interpolate], args.steps)
        path = sampling.save_png(_viewable(grid(images, cols=args.steps), images, args.scale), args.out)
        print(f"{len(args.interpolate)} interpolation strip(s) of {args.steps} from {uri} -> {path}")
        return 0
    images = sampling.sample(generator, seeds)
    path = sampling.save_png(_viewable(grid(images, cols=args.cols), images, args.scale), args.out)
    print(f"{len(images)} images (seeds {seeds[0]}..{seeds[-1]}) from {uri} -> {path}")
    if args.out_dir:
        paths = sampling.save_each(images, seeds, args.out_dir)
        print(f"{len(paths)} PNGs -> {args.out_dir}")
    return 0


def _sample_nearest(args: argparse.Namespace) -> int:
    from harness.generators import sampling
    from harness.generators.nearest import nearest_for_run

    if not args.run_id or args.generator or args.model or args.best or args.interpolate:
        raise ConfigError("--nearest needs --run-id ID alone (no --generator, --model, --best or --interpolate): "
                          "the run names the training images and the backbone to compare them in.")
    rows = 8 if args.n is None else args.n
    seeds = sampling.seeds_from(args.seed, rows)
    image, found = nearest_for_run(args.run_id, tracking_uri=args.tracking_uri, rows=rows, k=args.nearest_k,
                                   seed=args.seed, inception_path=args.inception)
    path = sampling.save_png(image, args.out)
    typical = "" if found.typical is None else f" (training images: median {found.typical:.3g} to the nearest other)"
    print(f"{rows} samples (seeds {seeds[0]}..{seeds[-1]}) of run {args.run_id} beside their {found.indices.shape[1]} "
          f"nearest training images -> {path}; nearest distances {', '.join(f'{d:.3g}' for d in found.distances[:, 0])}"
          + typical)
    return 0


# --- serve, register, export ---------------------------------------------------------------
def add_serve(sub) -> None:
    p = sub.add_parser("serve", help="a REST endpoint on a logged generator (mlflow models serve)",
                       description="Serve a logged generator with MLflow's model server. POST to "
                                   "/invocations e.g. {\"dataframe_records\": [{\"n\": 4, \"seed\": 3}], "
                                   "\"params\": {\"format\": \"png\"}}.")
    add_which_generator(p)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=5001)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from harness.store.model_server import serve

    flags.check_flags({"--port": (args.port, flags.between(1, 65535)), "--workers": (args.workers, flags.positive)})
    return serve(generator_uri(args), args.tracking_uri, host=args.host, port=args.port, workers=args.workers)


def add_register(sub) -> None:
    p = sub.add_parser("register", help="register a run's generator in the MLflow model registry")
    add_which_generator(p)
    p.add_argument("--name", required=True, help="the registered model's name")
    p.add_argument("--alias", help="also point this alias (e.g. champion) at the new version")
    p.set_defaults(handler=cmd_register)


def cmd_register(args: argparse.Namespace) -> int:
    uri = generator_uri(args)
    version = tracking.register(args.tracking_uri, uri, args.name, alias=args.alias)
    print(f"registered {uri} as models:/{args.name}/{version}"
          + (f" (models:/{args.name}@{args.alias})" if args.alias else ""))
    return 0


def add_export(sub) -> None:
    p = sub.add_parser("export", help="write a logged generator as .h5, .keras or a TensorFlow SavedModel",
                       description="Write a logged generator as a file: h5 (Keras's legacy HDF5, the notebooks' "
                                   "format), keras, or savedmodel (a folder for TF Serving and TFLite). Images "
                                   "come out in [-1, 1].")
    add_which_generator(p)
    p.add_argument("--format", choices=FORMATS, help="default: from --out's suffix (.h5 or .keras)")
    p.add_argument("--out", required=True, metavar="PATH", help="the file (or, for savedmodel, folder) to "
                                                                "write; never replaced")
    p.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    fmt = format_for(args.out, args.format)  # a bad --out fails before anything is looked up
    check_out(args.out)
    uri = generator_uri(args)
    path = export_logged(args.tracking_uri, uri, args.out, fmt)
    print(f"{uri} -> {path} ({fmt})")
    return 0


# --- eval: FID/KID/IS of a finished run, or of a generator file ---------------------------
def add_eval(sub) -> None:
    p = sub.add_parser("eval", help="FID/KID/IS of a finished run's generator, logged into that run",
                       description="Score a finished run's logged generator against its training images "
                                   "and log fid, kid, kid_std, is, is_std, feature_img_s at its last epoch; "
                                   "or, with --generator PATH --dataset NAME, a generator file, logged as a "
                                   "new run tagged source=external.")
    p.add_argument("--run-id", help="the run whose generator to score")
    add_generator_file(p, evaluated=True)
    flags.add_flags(p, RunConfig, only=["eval_samples", "backbone", "inception", "tracking_uri"],
                    defaults={"eval_samples": None},
                    help={"eval_samples": "generated images (default: the run's --eval-samples; with "
                                          "--generator, a run's default, 5000)"})
    add_data_root(p)
    p.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from harness.generators.file_scoring import evaluate_file
    from harness.generators.scoring import evaluate_run

    if args.eval_samples is not None and args.eval_samples < 10:
        raise ConfigError(f"--eval-samples {args.eval_samples} must be at least 10 (IS uses 10 splits).")
    flags.check_flags({"--seed": (args.seed, flags.at_least(0))})
    if args.run_id and not args.generator:
        evaluate_run(args.run_id, tracking_uri=args.tracking_uri, eval_samples=args.eval_samples,
                     backbone=args.backbone, inception_path=args.inception)
        return 0
    if not args.generator:
        raise ConfigError("eval needs --run-id ID (score a logged run) or --generator PATH --dataset NAME "
                          "(score a generator file).")
    external.one_source(args.generator, run_id=args.run_id)
    evaluate_file(args.generator, dataset=args.dataset, tracking_uri=args.tracking_uri,
                  experiment=args.experiment, eval_samples=args.eval_samples, seed=args.seed,
                  backbone=args.backbone, inception_path=args.inception, output_range=args.output_range)
    return 0
