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
from harness.errors import ConfigError, HarnessError

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
    # Not required=True: --from-study supplies both; cmd_run checks.
    p.add_argument("--variant", help="a preset or grammar name (see `harness variants`)")
    p.add_argument("--dataset", help="e.g. horses, cifar10:horses, folder:/path/to/eagles")
    p.add_argument("--from-study", metavar="STUDY_NAME",
                   help="train the best trial of this Optuna study: its variant, dataset and searched "
                        "params (flags given explicitly win, except --batch-size)")
    p.add_argument("--storage", help="with --from-study: where the study lives (default: ./optuna.db, "
                                     "then ./optuna.journal)")
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
    p.add_argument("--register", metavar="NAME",
                   help="register the finished run's generator in the MLflow model registry as NAME")
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

    if args.from_study:
        config = _study_run_config(args)
    elif not (args.variant and args.dataset):
        missing = " and ".join(f for f, v in (("--variant", args.variant), ("--dataset", args.dataset)) if not v)
        raise ConfigError(f"run needs {missing} (e.g. --variant bn_kernel4 --dataset horses), "
                          "or --from-study STUDY_NAME to train a study's best trial.")
    else:
        config = run_config(args)
    if args.register:  # a bad name fails now, not after training
        from harness import tracking

        tracking.check_model_name(args.register)
    resume = args.resume
    if resume == "latest":
        resume = train.find_resumable(config)
    result = train.run(config, resume=resume)
    print(f"run {result.run_id} {result.status} after {result.epochs_done} epochs; "
          f"generator: {result.model_uri}")
    if args.register and result.model_uri:
        version = tracking.register(config.tracking_uri, result.model_uri, args.register)
        print(f"registered models:/{args.register}/{version}")
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


# --- sample, serve, register: use a logged generator ----------------------------------
def _which_generator(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("which generator (one of)")
    g.add_argument("--run-id", help="the generator logged by this run")
    g.add_argument("--model", help="an MLflow model URI: models:/NAME/VERSION, models:/NAME@ALIAS, "
                                   "models:/NAME/ALIAS, models:/<model id>, runs:/ID/generator")
    g.add_argument("--best", action="store_true",
                   help="the FINISHED run with the lowest final FID in --dataset's experiment")
    g.add_argument("--dataset", help="with --best: the dataset whose experiment to search")
    g.add_argument("--experiment", help="with --best: search this experiment instead")
    g.add_argument("--eval-backbone", help="with --best: only FIDs from this backbone (e.g. inception)")
    g.add_argument("--eval-samples", type=int, help="with --best: only FIDs from this many generated images")
    _tracking(parser)


def _generator_uri(args: argparse.Namespace) -> str:
    from harness import sampling

    return sampling.model_uri(args.tracking_uri, run_id=args.run_id, model=args.model, best=args.best,
                              dataset=args.dataset, experiment=args.experiment,
                              backbone=args.eval_backbone, eval_samples=args.eval_samples)


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="images from a logged generator: a PNG grid, single PNGs, strips",
                       description="Draw images from a logged generator. Image k comes from seed "
                                   "--seed + k, the same image the model server returns for that seed.")
    _which_generator(p)
    p.add_argument("--n", type=int, default=64, help="how many images (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first image (default: %(default)s)")
    p.add_argument("--out", default="samples.png", help="the grid PNG (default: %(default)s)")
    p.add_argument("--cols", type=int, help="grid columns (default: a square)")
    p.add_argument("--out-dir", help="also write each image as DIR/seed_NNNNNN.png")
    p.add_argument("--interpolate", type=int, nargs=2, action="append", metavar=("SEED_A", "SEED_B"),
                   help="instead of the grid, a strip from SEED_A to SEED_B (repeat for more rows)")
    p.add_argument("--steps", type=int, default=8, help="images per interpolation strip")
    p.set_defaults(handler=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    from harness import sampling
    from harness.errors import ConfigError
    from harness.images import grid

    if args.cols is not None and args.cols < 1:
        raise ConfigError(f"--cols {args.cols} must be at least 1.")
    seeds = sampling.seeds_from(args.seed, args.n) if not args.interpolate else []
    uri = _generator_uri(args)
    generator = sampling.load_generator(args.tracking_uri, uri)
    if args.interpolate:
        images = sampling.interpolate(generator, [tuple(p) for p in args.interpolate], args.steps)
        path = sampling.save_png(grid(images, cols=args.steps), args.out)
        print(f"{len(args.interpolate)} interpolation strip(s) of {args.steps} from {uri} -> {path}")
        return 0
    images = sampling.sample(generator, seeds)
    path = sampling.save_png(grid(images, cols=args.cols), args.out)
    print(f"{len(images)} images (seeds {seeds[0]}..{seeds[-1]}) from {uri} -> {path}")
    if args.out_dir:
        paths = sampling.save_each(images, seeds, args.out_dir)
        print(f"{len(paths)} PNGs -> {args.out_dir}")
    return 0


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="a REST endpoint on a logged generator (mlflow models serve)",
                       description="Serve a logged generator with MLflow's model server. POST to "
                                   "/invocations e.g. {\"dataframe_records\": [{\"n\": 4, \"seed\": 3}], "
                                   "\"params\": {\"format\": \"png\"}}.")
    _which_generator(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=5001)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from harness.serve import serve

    return serve(_generator_uri(args), args.tracking_uri, host=args.host, port=args.port,
                         workers=args.workers)


def _add_register(sub) -> None:
    p = sub.add_parser("register", help="register a run's generator in the MLflow model registry")
    _which_generator(p)
    p.add_argument("--name", required=True, help="the registered model's name")
    p.add_argument("--alias", help="also point this alias (e.g. champion) at the new version")
    p.set_defaults(handler=cmd_register)


def cmd_register(args: argparse.Namespace) -> int:
    from harness import tracking

    uri = _generator_uri(args)
    version = tracking.register(args.tracking_uri, uri, args.name, alias=args.alias)
    print(f"registered {uri} as models:/{args.name}/{version}"
          + (f" (models:/{args.name}@{args.alias})" if args.alias else ""))
    return 0


# --- report -----------------------------------------------------------------------------
def _add_report(sub) -> None:
    p = sub.add_parser("report", help="comparison tables, ablation statistics and plots from logged runs",
                       description="Build the report from what MLflow and Optuna stored (reads only).")
    p.add_argument("--out", default="reports/latest", help="output folder (default: %(default)s)")
    p.add_argument("--experiment", action="append", metavar="NAME",
                   help="MLflow experiment to read; repeat or comma-separate (default: all)")
    p.add_argument("--format", default="md,csv,tex,html",
                   help="comma-separated subset of md,csv,tex,html (default: %(default)s)")
    _tracking(p)
    p.add_argument("--storage", help="Optuna storage of the studies (default: ./optuna.db or a "
                                     "*.journal file of the study command, if present)")
    p.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from reports import build_report
    from reports.study_store import default_storage

    experiments = [name.strip() for item in args.experiment or [] for name in item.split(",") if name.strip()]
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    result = build_report(args.tracking_uri, args.out, experiments=experiments or None, formats=formats,
                          storage=args.storage or default_storage())
    if result.empty:
        print(f"no runs or studies found in {args.tracking_uri}; wrote an empty report to {result.out}")
    else:
        print(f"report of {result.included} runs ({result.excluded} left out) and {result.studies} studies "
              f"written to {result.out} in {result.seconds:.1f} s:")
    for path in result.files:
        print(f"  {path}")
    return 0


# --- bench ----------------------------------------------------------------------------
def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="training throughput: the harness's step against the notebooks' loop")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--variants", default="animals_baseline,bn_kernel4", help="comma-separated variant names")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="training steps per timed repeat")
    p.add_argument("--repeats", type=int, default=3, help="alternating repeats per configuration")
    p.add_argument("--width", type=_positive_float, default=1.0, help="layer-width multiplier (smoke tests)")
    p.add_argument("--xla", default="auto", choices=("auto", "on", "off"))
    p.add_argument("--steps-per-execution", type=int, default=1)
    p.add_argument("--compare-xla", action="store_true", help="also time the step with XLA the other way")
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from harness.bench import run_benchmark
    from variants import resolve

    names = tuple(n.strip() for n in args.variants.split(",") if n.strip())
    for name in names:
        resolve(name)  # a bad name fails before TensorFlow starts
    log = (lambda *_: None) if args.json else print
    result = run_benchmark(names, batch=args.batch_size, steps=args.steps, repeats=args.repeats,
                           width=args.width, xla=args.xla, steps_per_execution=args.steps_per_execution,
                           compare_xla=args.compare_xla, log=log)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"peak: {result['peak_gflops'] and round(result['peak_gflops'])} GFLOP/s ({result['peak_how']}); "
              f"a large float32 matrix product here: {result['gemm_gflops']:.0f} GFLOP/s")
    return 0


# --- study: Optuna searches -------------------------------------------------------------
def _add_study(sub) -> None:
    p = sub.add_parser("study", help="search learning rates, beta_1, epochs and batch size with Optuna",
                       description="Run (or resume) one Optuna study per dataset for a variant; each "
                                   "trial is a run nested under the study's MLflow run.")
    p.add_argument("--variant", required=True, help="a preset or grammar name (see `harness variants`)")
    p.add_argument("--dataset", required=True, help="one or more, comma-separated: horses,cows,spiders")
    p.add_argument("--trials", type=int, required=True,
                   help="the total each study should reach, counting earlier trials")
    p.add_argument("--study-name", help="default: <class>-<variant>; with several datasets a prefix")
    p.add_argument("--storage", help="sqlite:///optuna.db (default, one worker), journal:optuna.journal "
                                     "(default with --workers), or postgresql://user@host/db")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    p.add_argument("--objective", default="fid", choices=("fid", "kid"), help="minimised at the last epoch")
    p.add_argument("--sampler", default="tpe", choices=("tpe", "random", "cmaes", "grid"))
    p.add_argument("--pruner", default="median", choices=("median", "hyperband", "none"))
    p.add_argument("--seed", type=int, default=0, help="training seed, and the sampler's")
    p.add_argument("--max-images", type=int, help="use only the first N training images")
    p.add_argument("--experiment", help="MLflow experiment (default: the dataset's class name)")
    _tracking(p)
    _data_root(p)
    s = p.add_argument_group("search space (default: lr 1e-5..1e-2 log, beta_1 0..0.9, epochs half to "
                             "1.5x the class's, batch 64/128/256)")
    s.add_argument("--space", metavar="FILE", help="a .json or .py space file (see studies/space.py)")
    s.add_argument("--param", action="append", default=[], metavar="NAME=SPEC",
                   help="g_lr=1e-4:1e-3, batch_size=32,64, beta_1=0.5 (fixed); repeatable")
    s.add_argument("--label-smoothing", action="store_true", help="also search label smoothing 0..0.2")
    e = p.add_argument_group("evaluation and speed")
    e.add_argument("--eval-every", type=int, default=5, help="score (and maybe prune) every K epochs")
    e.add_argument("--eval-samples", type=int, default=5000)
    e.add_argument("--backbone", default="auto", choices=("auto", "inception", "cifar10_classifier"))
    e.add_argument("--inception", help="path to classify_image_graph_def.pb or inception-2015-12-05.tgz")
    e.add_argument("--width", type=_positive_float, default=1.0, help="multiply every layer width")
    e.add_argument("--image-size", type=int, default=32, choices=(28, 32, 64))
    e.add_argument("--checkpoint-dir", default="checkpoints")
    e.add_argument("--xla", default="auto", choices=("auto", "on", "off"))
    e.add_argument("--progress", action="store_true", help="a progress bar per epoch")
    p.set_defaults(handler=cmd_study)


def cmd_study(args: argparse.Namespace) -> int:
    from studies import space as spaces
    from studies.runner import StudySettings, run_study

    given = spaces.to_json(spaces.load_space_file(args.space)) if args.space else {}
    given.update(spaces.to_json(dict(spaces.parse_param(text) for text in args.param)))
    datasets = [d.strip() for d in args.dataset.split(",") if d.strip()]
    if not datasets:
        raise ConfigError(f"--dataset {args.dataset!r} names no dataset; e.g. --dataset horses,cows.")
    for dataset in datasets:
        name = args.study_name
        if name and len(datasets) > 1:
            name = f"{name}-{RunConfig(variant=args.variant, dataset=dataset).class_name}"
        settings = StudySettings(
            variant=args.variant, dataset=dataset, trials=args.trials, study_name=name,
            storage=args.storage, tracking_uri=args.tracking_uri, experiment=args.experiment,
            max_images=args.max_images, seed=args.seed, objective=args.objective, sampler=args.sampler,
            pruner=args.pruner, workers=args.workers, space=given, label_smoothing=args.label_smoothing,
            eval_every=args.eval_every, eval_samples=args.eval_samples, backbone=args.backbone,
            inception=args.inception, width=args.width, image_size=args.image_size,
            checkpoint_dir=args.checkpoint_dir, xla=args.xla, progress=args.progress)
        summary = run_study(settings)
        counts = ", ".join(f"{summary[k]} {k}" for k in ("complete", "pruned", "fail") if summary.get(k))
        print(f"study {summary['study']}: {summary['trials']} trials ({counts or 'none finished'}); "
              f"MLflow parent run {summary['parent_run_id']}")
        if "best_value" in summary:
            params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in summary["best_params"].items())
            print(f"  best: trial {summary['best_trial']}, {args.objective} {summary['best_value']:.4g} "
                  f"({params}); train it with `python -m harness run --from-study {summary['study']}`")
        if "metric_note" in summary:
            print(f"  note: {summary['metric_note']}")
        print(f"  dashboard: {summary['dashboard']}")
        if summary["failed_workers"]:
            print(f"error: {summary['failed_workers']} worker(s) stopped early (their output is above); "
                  "re-run the same command to reach --trials.", file=sys.stderr)
            return 1
    return 0


def _study_run_config(args: argparse.Namespace) -> RunConfig:
    """``run --from-study``: the study's variant, dataset and best params under the flags."""
    import dataclasses

    from studies.runner import best_run

    best = best_run(args.from_study, args.storage)
    for flag, key in (("--variant", "variant"), ("--dataset", "dataset")):
        given = getattr(args, key)
        if given and given != best[key]:
            raise ConfigError(f"{flag} {given!r} differs from study {args.from_study!r}'s {best[key]!r}; "
                              f"drop {flag} or pick another study.")
    ns = argparse.Namespace(**vars(args))
    ns.variant, ns.dataset = best["variant"], best["dataset"]
    ns.epochs = args.epochs or best["epochs"]
    ns.batch_size = best["batch_size"] or args.batch_size
    ns.max_images = args.max_images if args.max_images is not None else best["max_images"]
    ns.width = args.width if args.width != 1.0 else best["width"]
    ns.run_name = args.run_name or f"{args.from_study}-best"
    config = run_config(ns)
    overrides = {**best["overrides"], **config.overrides}  # explicit --g-lr etc. win
    print(f"from study {args.from_study}: trial {best['trial']} ({best['objective']} {best['value']:.4g})")
    return dataclasses.replace(config, overrides=overrides, tags={
        **config.tags, "optuna.study_name": args.from_study, "optuna.best_trial": str(best["trial"])})


# --- backbone, eval: the FID/KID/IS backbone and scoring a finished run ------------------
def _add_backbone(sub) -> None:
    p = sub.add_parser("backbone", help="the offline FID/KID/IS backbone: a compact CIFAR-10 classifier",
                       description="Manage the offline backbone used for FID/KID/IS when the Inception "
                                   "graph is absent (values are named after the backbone that made them).")
    actions = p.add_subparsers(dest="backbone_action", metavar="ACTION", required=True)
    t = actions.add_parser("train", help="train it on all of CIFAR-10, cache it and log it to MLflow",
                           description="Train the CIFAR-10 classifier backbone (about 20 minutes on 2 CPU "
                                       "cores), save it in $HARNESS_CACHE_DIR/backbones and log it to the "
                                       "MLflow experiment 'backbones'.")
    t.add_argument("--epochs", type=int, default=6, help="default: %(default)s")
    t.add_argument("--width", type=int, default=16, help="channels of the first stage (default: %(default)s)")
    t.add_argument("--max-images", type=int, help="use only the first N training and test images (a quick look)")
    _tracking(t)
    _data_root(t)
    t.set_defaults(handler=cmd_backbone_train)


def cmd_backbone_train(args: argparse.Namespace) -> int:
    from harness.backbone import train_backbone

    result = train_backbone(epochs=args.epochs, channels=args.width, max_images=args.max_images,
                            data_root=args.data_root, tracking_uri=args.tracking_uri)
    print(f"backbone trained: test accuracy {result['accuracy']:.2%} in {result['seconds'] / 60:.1f} min "
          f"-> {result['path']} (MLflow run {result['run_id']})")
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="FID/KID/IS of a finished run's generator, logged into that run",
                       description="Score a finished run's logged generator against its training images "
                                   "and log fid, kid, kid_std, is, is_std, feature_img_s at its last epoch.")
    p.add_argument("--run-id", required=True, help="the run whose generator to score")
    _tracking(p)
    p.add_argument("--eval-samples", type=int, help="generated images (default: the run's --eval-samples)")
    p.add_argument("--backbone", default="auto", choices=("auto", "inception", "cifar10_classifier"),
                   help="auto: Inception when its graph is found, else the offline backbone")
    p.add_argument("--inception", help="path to classify_image_graph_def.pb or inception-2015-12-05.tgz")
    _data_root(p)
    p.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from harness.evaluation import evaluate_run

    if args.eval_samples is not None and args.eval_samples < 10:
        from harness.errors import ConfigError

        raise ConfigError(f"--eval-samples {args.eval_samples} must be at least 10 (IS uses 10 splits).")
    evaluate_run(args.run_id, tracking_uri=args.tracking_uri, eval_samples=args.eval_samples,
                 backbone=args.backbone, inception_path=args.inception)
    return 0


# --- entry point ------------------------------------------------------------------------
COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_run, _add_variants, _add_bench, _add_datasets,
                                                                       _add_sample, _add_serve, _add_register,
                                                                       _add_report, _add_study,
                                                                       _add_backbone, _add_eval)


def _unknown_flags(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> None:
    """Exit naming the unknown flags, from the command that was given, with the closest real flag."""
    from harness.errors import closest

    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = commands.choices.get(getattr(args, "command", None), parser)
    flags = [o for action in command._actions for o in action.option_strings]
    guess = closest(extra[0].split("=")[0], flags) if extra[0].startswith("-") else None
    command.error(f"unrecognized arguments: {' '.join(extra)}" + (f" (did you mean {guess}?)" if guess else ""))


class _Parser(argparse.ArgumentParser):
    """argparse, with a pointer to --help after each usage error."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\nSee `{self.prog} --help` for what it accepts.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m harness",
        description="Train DCGAN variants per image class, track them in MLflow, compare them.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (errors for people, never a traceback)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _unknown_flags(parser, args, extra)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # --data-root reaches every loader (data, metrics) through the environment,
    # for this command only: main() is also called in-process (tests, notebooks).
    previous_root = os.environ.get("HARNESS_DATA_DIR")
    if getattr(args, "data_root", None):
        os.environ["HARNESS_DATA_DIR"] = args.data_root
    try:
        return args.handler(args) or 0
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a fault of the machine (disk full, permissions), not a bug
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}. Free disk space or fix the permissions, then "
              "run again (a training run continues with --resume).", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the run is marked KILLED and its checkpoint kept; continue it with --resume",
              file=sys.stderr)
        return 130
    finally:
        if previous_root is None:
            os.environ.pop("HARNESS_DATA_DIR", None)
        else:
            os.environ["HARNESS_DATA_DIR"] = previous_root
