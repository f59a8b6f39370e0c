"""The command line, ``python -m harness <command>``: parse, then call the library.

Each command is an ``_add_<command>`` function that declares its flags and a
``cmd_<command>`` handler that calls library functions tests call directly.
The run settings' flags come from ``RunConfig`` (harness/config.py), the
study's from ``StudySettings``: each flag is written once, there. Commands
that train or evaluate import TensorFlow inside their handler, quietly, so
``--help``, ``variants`` and ``datasets`` answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
from collections.abc import Callable, Sequence

from harness import flags
from harness.config import RunConfig
from harness.errors import ConfigError, HarnessError, closest, describe_os_error
from harness.quiet import quiet_tensorflow
from harness.urls import redact


def _data_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", help="folder holding the datasets (default: $HARNESS_DATA_DIR, "
                                            "else ~/.cache/harness/data)")


def _tracking(parser: argparse.ArgumentParser) -> None:
    flags.add_flags(parser, RunConfig, only=["tracking_uri"])


def _names(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


# --- run ------------------------------------------------------------------------------
def _add_run(sub) -> None:
    p = sub.add_parser("run", help="train a variant on a dataset, logged to MLflow",
                       description="Train one GAN variant on one dataset and log it to MLflow.")
    flags.add_flags(p, RunConfig)
    _data_root(p)
    p.add_argument("--from-study", metavar="STUDY_NAME",
                   help="train the best trial of this Optuna study: its run settings and searched params "
                        "(flags given explicitly win)")
    p.add_argument("--storage", help="with --from-study: where the study lives (default: ./optuna.db, "
                                     "then ./optuna.journal)")
    p.add_argument("--resume", nargs="?", const="latest", metavar="RUN_ID",
                   help="continue a run from its last checkpoint (default: the latest unfinished one)")
    p.add_argument("--register", metavar="NAME",
                   help="register the finished run's generator in the MLflow model registry as NAME")
    p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from harness import tracking, train

    given = {name: getattr(args, name) for name in flags.given(args)}
    if args.from_study:
        from studies.best import study_best_config

        config = study_best_config(args.from_study, args.storage, given)
    elif not (args.variant and args.dataset):
        missing = " and ".join(f for f, v in (("--variant", args.variant), ("--dataset", args.dataset)) if not v)
        raise ConfigError(f"run needs {missing} (e.g. --variant bn_kernel4 --dataset horses), "
                          "or --from-study STUDY_NAME to train a study's best trial.")
    else:
        config = flags.build(RunConfig, flags.values(args, RunConfig))
    if args.register:  # a bad name fails now, not after training
        tracking.check_model_name(args.register)
    resume = train.find_resumable(config) if args.resume == "latest" else args.resume
    result = train.run(config, resume=resume)
    print(f"run {result.run_id} {result.status} after {result.epochs_done} epochs; "
          f"generator: {result.model_uri}")
    if args.register and result.model_uri:
        version = tracking.register(config.tracking_uri, result.model_uri, args.register)
        print(f"registered models:/{args.register}/{version}")
    return 0


# --- variants and datasets -----------------------------------------------------------------
def _add_variants(sub) -> None:
    p = sub.add_parser("variants", help="list presets and the variant name grammar")
    p.add_argument("--json", action="store_true", help="a JSON list of {name, axes..., source}")
    p.add_argument("--all", action="store_true", help="also every grammar combination of the axes")
    p.set_defaults(handler=cmd_variants)


def cmd_variants(args: argparse.Namespace) -> int:
    from variants import AXES, GRAMMAR_HELP, PRESETS, canonical_name, resolve
    from variants.grammar import combinations

    specs = list(PRESETS.values()) + ([resolve(name) for name in combinations()] if args.all else [])
    if args.json:
        print(json.dumps([{"name": s.name, **s.axes(), "canonical": canonical_name(s),
                           "preset": s.name in PRESETS, "image_size": s.image_size, "channels": s.channels,
                           "source": s.source} for s in specs], indent=2))
        return 0
    print("Presets (the published notebooks' architectures):\n")
    for spec in PRESETS.values():
        axes = ", ".join(f"{k}={v}" for k, v in spec.axes().items())
        print(f"  {spec.name}\n    {axes}\n    {spec.source}\n")
    print("Names over the axes (" + ", ".join(AXES) + "):\n")
    print(GRAMMAR_HELP)
    for spec in specs[len(PRESETS):]:
        print(f"  {spec.name}")
    return 0


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
    flags.add_flags(g, RunConfig, only=["dataset", "experiment"],
                    help={"dataset": "with --best: the dataset whose experiment to search",
                          "experiment": "with --best: search this experiment instead"})
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
    _generator_file(p)
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
    from harness.images import grid

    if args.cols is not None and args.cols < 1:
        raise ConfigError(f"--cols {args.cols} must be at least 1.")
    seeds = sampling.seeds_from(args.seed, args.n) if not args.interpolate else []
    uri, generator = _sample_source(args)
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
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=5001)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from harness.serve import serve

    return serve(_generator_uri(args), args.tracking_uri, host=args.host, port=args.port, workers=args.workers)


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
    p.add_argument("--campaign", metavar="NAME", help="report only this campaign's runs, with its plan and cells")
    _tracking(p)
    p.add_argument("--storage", help="Optuna storage of the studies (default: ./optuna.db or a "
                                     "*.journal file of the study command, if present)")
    p.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from reports import build_report
    from reports.study_store import default_storage

    experiments = [name for item in args.experiment or [] for name in _names(item)]
    result = build_report(args.tracking_uri, args.out, experiments=experiments or None,
                          formats=tuple(_names(args.format)), storage=args.storage or default_storage(),
                          campaign=args.campaign)
    if result.empty:
        print(f"no runs or studies found in {redact(args.tracking_uri)}; wrote an empty report to {result.out}")
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
    p.add_argument("--steps", type=int, default=20, help="training steps per timed repeat")
    p.add_argument("--repeats", type=int, default=3, help="alternating repeats per configuration")
    p.add_argument("--compare-xla", action="store_true", help="also time the step with XLA the other way")
    flags.add_flags(p, RunConfig, only=["batch_size", "width", "xla", "steps_per_execution"])
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from harness.bench import run_benchmark
    from variants import resolve

    names = tuple(_names(args.variants))
    for name in names:
        resolve(name)  # a bad name fails before any timing
    result = run_benchmark(names, batch=args.batch_size, steps=args.steps, repeats=args.repeats,
                           width=args.width, xla=args.xla, steps_per_execution=args.steps_per_execution,
                           compare_xla=args.compare_xla, log=(lambda *_: None) if args.json else print)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"peak: {result['peak_gflops'] and round(result['peak_gflops'])} GFLOP/s ({result['peak_how']}); "
              f"a large float32 matrix product here: {result['gemm_gflops']:.0f} GFLOP/s")
    return 0


# --- study: Optuna searches -------------------------------------------------------------
def _add_study(sub) -> None:
    from studies.settings import NOT_STUDY_FLAGS, STUDY_DEFAULTS, StudySettings

    p = sub.add_parser("study", help="search learning rates, beta_1, epochs and batch size with Optuna",
                       description="Run (or resume) one Optuna study per dataset for a variant; each "
                                   "trial is a run nested under the study's MLflow run.")
    flags.add_flags(p, RunConfig, skip=NOT_STUDY_FLAGS, defaults=STUDY_DEFAULTS,
                    help={"dataset": "one or more, comma-separated: horses,cows,spiders",
                          "seed": "training seed, and the sampler's"})
    flags.add_flags(p, StudySettings)
    _data_root(p)
    s = p.add_argument_group("search space (default: lr 1e-5..1e-2 log, beta_1 0..0.9, epochs half to "
                             "1.5x the class's, batch 64/128/256)")
    s.add_argument("--space", metavar="FILE", help="a .json or .py space file (see studies/space.py)")
    s.add_argument("--param", action="append", default=[], metavar="NAME=SPEC",
                   help="g_lr=1e-4:1e-3, batch_size=32,64, beta_1=0.5 (fixed); repeatable")
    p.set_defaults(handler=cmd_study)


def cmd_study(args: argparse.Namespace) -> int:
    from studies import space as spaces
    from studies.runner import run_study
    from studies.settings import StudySettings

    if not (args.variant and args.dataset and args.trials):
        raise ConfigError("study needs --variant, --dataset and --trials (e.g. --variant bn_kernel4 "
                          "--dataset horses --trials 30).")
    given = spaces.to_json(spaces.load_space_file(args.space)) if args.space else {}
    given.update(spaces.to_json(dict(spaces.parse_param(text) for text in args.param)))
    datasets = _names(args.dataset)
    if not datasets:
        raise ConfigError(f"--dataset {args.dataset!r} names no dataset; e.g. --dataset horses,cows.")
    failed = 0
    for dataset in datasets:
        run = flags.build(RunConfig, {**flags.values(args, RunConfig), "dataset": dataset})
        study = flags.values(args, StudySettings)
        if study.get("study_name") and len(datasets) > 1:
            study["study_name"] = f"{study['study_name']}-{run.class_name}"
        summary = run_study(StudySettings(run=run, space=given, **study))
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
        failed += summary["failed_workers"]
    if failed:
        print(f"error: {failed} worker(s) stopped early (their output is above); re-run the same command "
              "to reach --trials.", file=sys.stderr)
        return 1
    return 0


# --- campaign: the whole comparison --------------------------------------------------------
def _add_campaign(sub) -> None:
    p = sub.add_parser("campaign", help="run every cell (dataset x variant x seed) of a plan; again to resume",
                       description="Train every missing cell of a campaign plan (TOML, see campaigns/pilot.toml); "
                                   "run it again to resume. Several machines: the same command with one "
                                   "--storage and --tracking-uri on each.")
    p.add_argument("plan", help="the plan file, e.g. campaigns/pilot.toml")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true", help="print the grid (finished/running/failed/missing) and ETA")
    what.add_argument("--dry-run", action="store_true", help="print the cells it would run and the estimated time")
    p.add_argument("--storage", help="where the cells are queued: ./optuna.db (default), a journal file "
                                     "(default with --workers), or postgresql://user@host/db for many machines")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default: 1)")
    p.add_argument("--retry-failed", action="store_true", help="also run cells whose run FAILED")
    p.add_argument("--rerun-changed", action="store_true",
                   help="train again the cells whose settings changed since their run finished")
    p.add_argument("--heartbeat", type=int, default=30, metavar="SECONDS",
                   help="how often a running cell proves its worker alive; silent for 4x this long, it goes to "
                        "another worker (default: %(default)s)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # started by --workers
    flags.add_flags(p, RunConfig, only=["tracking_uri", "checkpoint_dir"])
    _data_root(p)
    p.set_defaults(handler=cmd_campaign)


def cmd_campaign(args: argparse.Namespace) -> int:
    from harness.campaign.plan import load_plan
    from harness.campaign.run import Options, run_campaign
    from harness.campaign.status import dry_run_text, status_text

    if args.workers < 1 or args.heartbeat < 1:
        raise ConfigError("--workers and --heartbeat must be at least 1.")
    plan = load_plan(args.plan, tracking_uri=args.tracking_uri, checkpoint_dir=args.checkpoint_dir,
                     study_storage=args.storage)
    options = Options(storage=args.storage, workers=args.workers, retry_failed=args.retry_failed,
                      rerun_changed=args.rerun_changed, heartbeat_s=args.heartbeat, worker=args.worker)
    if args.status or args.dry_run:
        print(status_text(plan, options.url) if args.status else dry_run_text(plan))
        return 0
    outcome = run_campaign(plan, options)
    if not args.worker:
        print(status_text(plan, options.url))
    return 1 if outcome.failed or outcome.failed_workers else 0


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
    t.add_argument("--channels", "--width", dest="channels", type=int, default=16,
                   help="channels of the first stage (default: %(default)s)")
    t.add_argument("--max-images", type=int, help="use only the first N training and test images (a quick look)")
    _tracking(t)
    _data_root(t)
    t.set_defaults(handler=cmd_backbone_train)


def cmd_backbone_train(args: argparse.Namespace) -> int:
    from harness.backbone import train_backbone

    result = train_backbone(epochs=args.epochs, channels=args.channels, max_images=args.max_images,
                            data_root=args.data_root, tracking_uri=args.tracking_uri)
    print(f"backbone trained: test accuracy {result['accuracy']:.2%} in {result['seconds'] / 60:.1f} min "
          f"-> {result['path']} (MLflow run {result['run_id']})")
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="FID/KID/IS of a finished run's generator, logged into that run",
                       description="Score a finished run's logged generator against its training images "
                                   "and log fid, kid, kid_std, is, is_std, feature_img_s at its last epoch; "
                                   "or, with --generator PATH --dataset NAME, a generator file, logged as a "
                                   "new run tagged source=external.")
    p.add_argument("--run-id", help="the run whose generator to score")
    _generator_file(p, evaluated=True)
    flags.add_flags(p, RunConfig, only=["eval_samples", "backbone", "inception", "tracking_uri"],
                    defaults={"eval_samples": None},
                    help={"eval_samples": "generated images (default: the run's --eval-samples; with "
                                          "--generator, a run's default, 5000)"})
    _data_root(p)
    p.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from harness.evaluation import evaluate_run

    if args.eval_samples is not None and args.eval_samples < 10:
        raise ConfigError(f"--eval-samples {args.eval_samples} must be at least 10 (IS uses 10 splits).")
    if args.generator or not args.run_id:
        return _eval_file(args)
    evaluate_run(args.run_id, tracking_uri=args.tracking_uri, eval_samples=args.eval_samples,
                 backbone=args.backbone, inception_path=args.inception)
    return 0


# --- generator files: sample/eval --generator, export ------------------------------------
def _generator_file(parser: argparse.ArgumentParser, evaluated: bool = False) -> None:
    from harness.external import OUTPUT_RANGES

    parser.add_argument("--generator", metavar="PATH",
                        help="a generator file (.h5 or .keras, e.g. saved by the notebooks) instead of a logged one")
    parser.add_argument("--output-range", choices=OUTPUT_RANGES, default="auto",
                        help="with --generator: its images' range, tanh ([-1, 1]) or sigmoid ([0, 1]) "
                             "(default: read from its output activation)")
    if evaluated:
        flags.add_flags(parser, RunConfig, only=["dataset", "experiment", "seed"], defaults={"seed": None},
                        help={"dataset": "with --generator: the real images to compare it with",
                              "experiment": "with --generator: log into this experiment (default: the "
                                            "dataset's class)",
                              "seed": "with --generator: seed of the generated images' noise (default: 0, "
                                      "as runs)"})


def _sample_source(args: argparse.Namespace):
    """(its name, the Keras generator) of --generator PATH, or of the logged one named otherwise."""
    from harness import external, sampling

    if args.generator:
        external.one_source(args.generator, run_id=args.run_id, model=args.model, best=args.best)
        return args.generator, external.load(args.generator, args.output_range).model
    uri = _generator_uri(args)
    return uri, sampling.load_generator(args.tracking_uri, uri)


def _eval_file(args: argparse.Namespace) -> int:
    from harness import external
    from harness.external_evaluation import evaluate_file

    if not args.generator:
        raise ConfigError("eval needs --run-id ID (score a logged run) or --generator PATH --dataset NAME "
                          "(score a generator file).")
    external.one_source(args.generator, run_id=args.run_id)
    evaluate_file(args.generator, dataset=args.dataset, tracking_uri=args.tracking_uri,
                  experiment=args.experiment, eval_samples=args.eval_samples, seed=args.seed,
                  backbone=args.backbone, inception_path=args.inception, output_range=args.output_range)
    return 0


def _add_export(sub) -> None:
    from harness.export import FORMATS

    p = sub.add_parser("export", help="write a logged generator as .h5, .keras or a TensorFlow SavedModel",
                       description="Write a logged generator as a file: h5 (Keras's legacy HDF5, the notebooks' "
                                   "format), keras, or savedmodel (a folder for TF Serving and TFLite). Images "
                                   "come out in [-1, 1].")
    _which_generator(p)
    p.add_argument("--format", choices=FORMATS, help="default: from --out's suffix (.h5 or .keras)")
    p.add_argument("--out", required=True, metavar="PATH", help="the file (or, for savedmodel, folder) to "
                                                                "write; never replaced")
    p.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from harness.export import export_logged, format_for

    fmt = format_for(args.out, args.format)  # a bad --out fails before anything is looked up
    uri = _generator_uri(args)
    path = export_logged(args.tracking_uri, uri, args.out, fmt)
    print(f"{uri} -> {path} ({fmt})")
    return 0


# --- fidelity: the harness's step against the notebooks' loop ---------------------------
def _add_fidelity(sub) -> None:
    from harness.fidelity import RUN_DEFAULTS, RUN_FLAGS, FidelitySettings

    p = sub.add_parser("fidelity", help="train a variant with the harness's step and the notebooks' loop "
                                        "over seeds, and compare them",
                       description="Train a variant with the harness's compiled step and with the notebooks' "
                                   "loop (same data, order, batch size and initial weights), several seeds "
                                   "each; compare real_acc, fake_acc, d_loss, g_loss per epoch and the final "
                                   "FID/KID. Writes fidelity.md, .json and .png to --out; a re-run reuses "
                                   "each finished (loop, seed).")
    flags.add_flags(p, RunConfig, only=RUN_FLAGS, defaults=RUN_DEFAULTS,
                    help={"epochs": f"epochs per (loop, seed) (default: {RUN_DEFAULTS['epochs']})"})
    flags.add_flags(p, FidelitySettings)
    _data_root(p)
    p.set_defaults(handler=cmd_fidelity)


def cmd_fidelity(args: argparse.Namespace) -> int:
    from harness.fidelity import FidelitySettings, run_fidelity

    run = flags.build(RunConfig, flags.values(args, RunConfig))
    result = run_fidelity(flags.build(FidelitySettings, flags.values(args, FidelitySettings), run=run))
    with open(result["files"][1]) as table:
        print(table.read())
    print("\n".join(["written:", *(f"  {path}" for path in result["files"])]))
    return 0


# --- entry point ------------------------------------------------------------------------
COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_run, _add_variants, _add_bench, _add_datasets, _add_sample, _add_serve, _add_register, _add_report,
    _add_study, _add_campaign, _add_backbone, _add_eval, _add_export, _add_fidelity)


class _Parser(argparse.ArgumentParser):
    """argparse, with a pointer to --help after each usage error."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\nSee `{self.prog} --help` for what it accepts.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m harness",
                     description="Train DCGAN variants per image class, track them in MLflow, compare them.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    for command in sub.choices.values():
        command.add_argument("-v", "--verbose", action="store_true",
                             help="show TensorFlow's own start-up and log messages (hidden by default)")
    return parser


def _unknown_flags(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> None:
    """Exit naming the unknown flags, from the command that was given, with the closest real flag."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = commands.choices.get(getattr(args, "command", None), parser)
    options = [o for action in command._actions for o in action.option_strings]
    guess = closest(extra[0].split("=")[0], options) if extra[0].startswith("-") else None
    command.error(f"unrecognized arguments: {' '.join(extra)}" + (f" (did you mean {guess}?)" if guess else ""))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (errors for people, never a traceback)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _unknown_flags(parser, args, extra)
    # --data-root reaches every loader (data, metrics) through the environment,
    # for this command only: main() is also called in-process (tests, notebooks).
    previous_root = os.environ.get("HARNESS_DATA_DIR")
    if getattr(args, "data_root", None):
        os.environ["HARNESS_DATA_DIR"] = args.data_root
    try:
        if not args.verbose:
            quiet_tensorflow()
        return args.handler(args) or 0
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # The reader went away (`harness datasets | head -1`): end quietly, like any Unix tool.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a fault of the machine (disk full, permissions), not a bug
        if exc.errno == errno.EPIPE:
            return 0
        run = getattr(exc, "resumable_run", None)
        hint = f" Fix that, then continue run {run} with --resume." if run else ""
        print(f"error: {describe_os_error(exc)}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        again = {"campaign": "run the same campaign command again to go on",
                 "study": "run the same study command again to go on",
                 "fidelity": "run the same fidelity command again: finished (loop, seed) runs are reused",
                 }.get(args.command)
        print(f"interrupted: {again or 'a training run is marked KILLED with its checkpoint; continue it with --resume'}",
              file=sys.stderr)
        return 130
    finally:
        if previous_root is None:
            os.environ.pop("HARNESS_DATA_DIR", None)
        else:
            os.environ["HARNESS_DATA_DIR"] = previous_root
