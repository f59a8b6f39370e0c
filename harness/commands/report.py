"""The ``report`` command: tables, ablation statistics and plots from what was logged (reads only)."""

from __future__ import annotations

import argparse
import inspect

from harness.commands.common import add_tracking, names
from harness.store.urls import redact
from reports import build_report
from reports.study_store import default_storage

# The defaults are build_report's own.
_DEFAULTS = inspect.signature(build_report).parameters
_FORMATS = ",".join(_DEFAULTS["formats"].default)


def add_report(sub) -> None:
    p = sub.add_parser("report", help="comparison tables, ablation statistics and plots from logged runs",
                       description="Build the report from what MLflow and Optuna stored (reads only).")
    p.add_argument("--out", default=str(_DEFAULTS["out"].default), help="output folder (default: %(default)s)")
    p.add_argument("--experiment", action="append", metavar="NAME",
                   help="MLflow experiment to read; repeat or comma-separate (default: all)")
    p.add_argument("--format", default=_FORMATS,
                   help=f"comma-separated subset of {_FORMATS} (default: %(default)s)")
    p.add_argument("--campaign", metavar="NAME", help="report only this campaign's runs, with its plan and cells")
    add_tracking(p)
    p.add_argument("--storage", help="Optuna storage of the studies (default: ./optuna.db or a "
                                     "*.journal file of the study command, if present)")
    p.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    experiments = [name for item in args.experiment or [] for name in names(item)]
    result = build_report(args.tracking_uri, args.out, experiments=experiments or None,
                          formats=tuple(names(args.format)), storage=args.storage or default_storage(),
                          campaign=args.campaign)
    if result.empty:
        print(f"no runs or studies found in {redact(args.tracking_uri)}; wrote an empty report to {result.out}")
    else:
        print(f"report of {result.included} runs ({result.excluded} left out) and {result.studies} studies "
              f"written to {result.out} in {result.seconds:.1f} s:")
    for path in result.files:
        print(f"  {path}")
    return 0
