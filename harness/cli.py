"""The command line, ``python -m harness <command>``: parse, then call the library.

Each command's flags and its thin handler live in ``harness.commands``, grouped
by what they act on; this module assembles the parser and runs the handler
with errors for people: a ``HarnessError`` or a fault of the machine is one
line on stderr and an exit code, never a traceback. The commands import
TensorFlow, MLflow and Optuna only in their handlers, quietly, so ``--help``,
``variants`` and ``datasets`` answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
from collections.abc import Callable, Sequence

from harness.commands import backbone, catalog, generators, notebooks, report, training
from harness.errors import HarnessError, closest, describe_os_error
from harness.quiet import quiet_tensorflow

# Each adds its command (flags and handler) to the subparsers, in the order `--help` lists them.
COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    training.add_run, catalog.add_variants, notebooks.add_bench, catalog.add_datasets, generators.add_sample,
    generators.add_serve, generators.add_register, report.add_report, training.add_study, training.add_campaign,
    backbone.add_backbone, generators.add_eval, generators.add_export, notebooks.add_fidelity)


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
