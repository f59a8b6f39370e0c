"""Commands that list what there is: ``variants`` (presets and the name grammar) and ``datasets``."""

from __future__ import annotations

import argparse
import json

from harness.commands.common import add_data_root
from harness.data import list_datasets
from harness.data.listing import format_table
from variants.listing import listing, records


def add_variants(sub) -> None:
    p = sub.add_parser("variants", help="list presets and the variant name grammar")
    p.add_argument("--json", action="store_true", help="a JSON list of {name, axes..., source}")
    p.add_argument("--all", action="store_true", help="also every grammar combination of the axes")
    p.set_defaults(handler=cmd_variants)


def cmd_variants(args: argparse.Namespace) -> int:
    # The grammar's help is a docstring: its reST ``literals`` read as plain names on a terminal.
    print(json.dumps(records(args.all), indent=2) if args.json else listing(args.all).replace("``", ""))
    return 0


def add_datasets(sub) -> None:
    p = sub.add_parser("datasets", help="list known datasets, where they are looked for and what is here",
                       description="Every known dataset: its source, whether it is available on this "
                                   "machine, its image count and where it is looked for.")
    p.add_argument("--json", action="store_true", help="a JSON list of {name, source, spec, available, count, where}")
    add_data_root(p)
    p.set_defaults(handler=cmd_datasets)


def cmd_datasets(args: argparse.Namespace) -> int:
    rows = list_datasets(args.data_root)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0
