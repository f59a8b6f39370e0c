"""Commands that train: ``run`` (one run), ``study`` (Optuna searches), ``campaign`` (a whole plan).

The run settings' flags come from ``RunConfig``, the study's from
``StudySettings``: each flag is declared once, there.
"""

from __future__ import annotations

import argparse
import sys

from harness import flags
from harness.campaign.plan import MAX_CELLS, load_plan
from harness.commands.common import add_data_root, names
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.store import tracking
from harness.train import run as train
from studies import space as spaces
from studies.best import study_best_config
from studies.runner import run_study, summary_lines
from studies.settings import NOT_STUDY_FLAGS, STUDY_DEFAULTS, StudySettings
from studies.storage import HEARTBEAT_S

# The campaign's runner and status import Optuna and Keras: they are imported in
# its handler, so that `--help`, `variants` and `datasets` start without them.


# --- run ------------------------------------------------------------------------------
def add_run(sub) -> None:
    p = sub.add_parser("run", help="train a variant on a dataset, logged to MLflow",
                       description="Train one GAN variant on one dataset and log it to MLflow.")
    flags.add_flags(p, RunConfig)
    add_data_root(p)
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
    if args.from_study:
        given = {name: getattr(args, name) for name in flags.given(args)}
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


# --- study: Optuna searches -------------------------------------------------------------
def add_study(sub) -> None:
    p = sub.add_parser("study", help="search learning rates, beta_1, epochs and batch size with Optuna",
                       description="Run (or resume) one Optuna study per dataset for a variant; each "
                                   "trial is a run nested under the study's MLflow run.")
    flags.add_flags(p, RunConfig, skip=NOT_STUDY_FLAGS, defaults=STUDY_DEFAULTS,
                    help={"dataset": "one or more, comma-separated: horses,cows,spiders",
                          "seed": "training seed, and the sampler's"})
    flags.add_flags(p, StudySettings)
    add_data_root(p)
    s = p.add_argument_group("search space (default: lr 1e-5..1e-2 log, beta_1 0..0.9, epochs half to "
                             "1.5x the class's, batch 64/128/256)")
    s.add_argument("--space", metavar="FILE", help="a .json or .py space file (see studies/space.py)")
    s.add_argument("--param", action="append", default=[], metavar="NAME=SPEC",
                   help="g_lr=1e-4:1e-3, batch_size=32,64, beta_1=0.5 (fixed); repeatable")
    p.set_defaults(handler=cmd_study)


def cmd_study(args: argparse.Namespace) -> int:
    if not (args.variant and args.dataset and args.trials):
        raise ConfigError("study needs --variant, --dataset and --trials (e.g. --variant bn_kernel4 "
                          "--dataset horses --trials 30).")
    given = spaces.to_json(spaces.load_space_file(args.space)) if args.space else {}
    given.update(spaces.to_json(dict(spaces.parse_param(text) for text in args.param)))
    datasets = names(args.dataset)
    if not datasets:
        raise ConfigError(f"--dataset {args.dataset!r} names no dataset; e.g. --dataset horses,cows.")
    failed = 0
    for dataset in datasets:
        run = flags.build(RunConfig, {**flags.values(args, RunConfig), "dataset": dataset})
        study = flags.values(args, StudySettings)
        if study.get("study_name") and len(datasets) > 1:
            study["study_name"] = f"{study['study_name']}-{run.class_name}"
        summary = run_study(StudySettings(run=run, space=given, **study))
        print("\n".join(summary_lines(summary, args.objective)))
        failed += summary["failed_workers"]
    if failed:
        print(f"error: {failed} worker(s) stopped early (their output is above); re-run the same command "
              "to reach --trials.", file=sys.stderr)
        return 1
    return 0


# --- campaign: the whole comparison --------------------------------------------------------
def add_campaign(sub) -> None:
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
    p.add_argument("--heartbeat", type=int, default=HEARTBEAT_S, metavar="SECONDS",
                   help="how often a running cell proves its worker alive; silent for 4x this long, it goes to "
                        "another worker (default: %(default)s)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # started by --workers
    p.add_argument("--max-cells", type=int, default=MAX_CELLS, metavar="N",
                   help="refuse a plan of more cells than this (default: %(default)s)")
    flags.add_flags(p, RunConfig, only=["tracking_uri", "checkpoint_dir"])
    add_data_root(p)
    p.set_defaults(handler=cmd_campaign)


def cmd_campaign(args: argparse.Namespace) -> int:
    from harness.campaign.run import Options, run_campaign
    from harness.campaign.status import dry_run_text, status_text

    if args.workers < 1 or args.heartbeat < 1:
        raise ConfigError("--workers and --heartbeat must be at least 1.")
    if flags.positive(args.max_cells):
        raise ConfigError(f"--max-cells {args.max_cells} {flags.positive(args.max_cells)}.")
    plan = load_plan(args.plan, tracking_uri=args.tracking_uri, checkpoint_dir=args.checkpoint_dir,
                     max_cells=args.max_cells,
                     study_storage=args.storage)
    options = Options(storage=args.storage, workers=args.workers, retry_failed=args.retry_failed,
                      rerun_changed=args.rerun_changed, heartbeat_s=args.heartbeat, worker=args.worker)
    if plan.tuning is not None:  # each arm searched alike, then confirmed on fresh seeds
        from harness.campaign import tuned
        run_campaign, status_text, dry_run_text = tuned.run_tuned, tuned.status_text, tuned.dry_run_text
    if args.status or args.dry_run:
        print(status_text(plan, options.url) if args.status else dry_run_text(plan))
        return 0
    outcome = run_campaign(plan, options)
    if not args.worker:
        print(status_text(plan, options.url))
    return 1 if outcome.failed or outcome.failed_workers else 0
