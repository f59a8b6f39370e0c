"""Settings declared once: a dataclass field carries its flag, help, type, choices and check.

A field declared with ``setting(default, help=..., kind=int, check=positive)``
is the one place that setting is written. From it come:

- the command-line flags (``add_flags(parser, RunConfig)``): spelling, help
  with the default, choices; a command may take a subset or other defaults;
- the values a user gave (``given(args)``), as opposed to defaults;
- strict construction from a mapping (``build(cls, mapping, where)``: a
  campaign plan, a stored config): unknown keys and wrong types are errors
  naming the key and the closest valid one;
- validation (``validate(instance)``, called from ``__post_init__``): each
  field's kind and check, with the flag in the message;
- its roles (``role="cell unlogged"``, read by ``roles``): words from
  ``ROLES`` saying what else the field is. A field without a role is an
  ordinary training setting: logged as a param, part of what a result is,
  set by a plan or a study like any other. harness/config.py derives from
  the roles every set of fields that once was a hand-written list.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from harness.errors import ConfigError, closest, shown

Check = Callable[[Any], "str | None"]  # returns what is wrong, or None

# The words a ``role`` may hold: each changes one thing from an ordinary training setting.
ROLES: dict[str, str] = {
    "cell": "the campaign cell (or the study trial) sets it: a plan may not",
    "unlogged": "not logged as a param: another param or tag stands for it",
    "searched": "a study searches it, so the study takes no flag for it",
    "result": "part of what a result is, not of what a step trains: a resumed run may change it",
    "speed": "how fast or how tidily a run goes: no part of its result",
    "per_machine": "where this machine keeps or shows things: no part of the result, nor of a plan",
    "per_run": "the run's own name and labels: no part of the result, a plan or a study's flags; unlogged",
    "notebook": "the notebooks' reference loop takes it too (the fidelity comparison's flags)",
}


def setting(default: Any = dataclasses.MISSING, *, help: str, kind: type | None = None,
            choices: tuple | None = None, check: Check | None = None, flag: str | None = None,
            aliases: tuple[str, ...] = (), group: str | None = None, metavar: str | None = None,
            cli: bool = True, factory: Callable[[], Any] | None = None, role: str = "") -> Any:
    """A dataclass field with its command-line flag (see the module docstring).

    ``kind`` is int, float, str, bool or dict (None: taken from the default).
    A default of None means "not set" (the field's help says what then
    happens). ``cli=False`` keeps a field off the command line. ``role``
    holds words of ``ROLES``, separated by spaces.
    """
    kind = kind or type(default if factory is None else factory())
    words = frozenset(role.split())
    if words - set(ROLES):
        raise ValueError(f"unknown role {sorted(words - set(ROLES))}; valid: {', '.join(ROLES)}")
    meta = {"help": help, "kind": kind, "choices": choices, "check": check, "flag": flag,
            "aliases": aliases, "group": group, "metavar": metavar, "cli": cli, "roles": words}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def settings_of(cls) -> dict[str, dataclasses.Field]:
    """The fields of ``cls`` declared with ``setting``, by name."""
    return {f.name: f for f in dataclasses.fields(cls) if "kind" in f.metadata}


def roles(cls) -> dict[str, frozenset[str]]:
    """Each setting of ``cls`` (in declaration order) with its role words."""
    return {name: field.metadata["roles"] for name, field in settings_of(cls).items()}


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata["flag"] or "--" + field.name.replace("_", "-")


# --- checks ------------------------------------------------------------------------
def positive(value: Any) -> str | None:
    if value > 0:
        return None
    return "must be a positive whole number" if isinstance(value, int) else "must be greater than 0"


def at_least(low: float) -> Check:
    return lambda value: None if value >= low else f"must be at least {low}"


def between(low: float, high: float, *, high_open: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if low <= value and (value < high if high_open else value <= high):
            return None
        return f"must be in [{low}, {high}{')' if high_open else ']'}"
    return check


def longest(n: int) -> Check:
    return lambda value: None if 0 < len(value) <= n else f"must be 1 to {n} characters long"


# --- validation and construction ------------------------------------------------------
def validate(instance: Any) -> None:
    """Check every setting of ``instance``: kind, choices and check. Raises ConfigError."""
    check_values(type(instance), {name: getattr(instance, name) for name in settings_of(type(instance))})


def check_values(cls, values: Mapping[str, Any]) -> None:
    """Check ``values`` (some settings of ``cls``, by name) as ``validate`` checks an instance:
    for a command that takes a few of ``cls``'s flags without building one. Raises ConfigError."""
    fields = settings_of(cls)
    for name, value in values.items():
        field = fields[name]
        if value is None and (field.default is None):
            continue
        meta, flag = field.metadata, flag_of(field)
        problem = _kind_problem(value, meta["kind"])
        if problem is None and meta["choices"] is not None and value not in meta["choices"]:
            problem = f"must be one of {', '.join(map(str, meta['choices']))}"
        if problem is None and meta["check"] is not None:
            problem = meta["check"](value)
        if problem:
            raise ConfigError(f"{flag} {shown(value)} {problem}.")


def check_flags(checks: Mapping[str, tuple[Any, Check]]) -> None:
    """Check command-line values that are no setting of a dataclass (``{"--steps": (8, positive)}``)
    with the same checks and message; None (not given) passes. Raises ConfigError."""
    for flag, (value, check) in checks.items():
        problem = None if value is None else check(value)
        if problem:
            raise ConfigError(f"{flag} {shown(value)} {problem}.")


def fraction(value: Any) -> str | None:
    """A share of something, above 0 and at most all of it: learning rates, equivalence margins."""
    return None if 0 < value <= 1 else "must be in (0, 1]"


learning_rate = fraction


def _kind_problem(value: Any, kind: type) -> str | None:
    if kind is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if kind is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be a whole number"
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok and value == value else "must be a number"
    if kind is str:
        return None if isinstance(value, str) else "must be text"
    if kind is dict:
        return None if isinstance(value, dict) else "must be a table of names to values"
    return None


def build(cls, data: Mapping[str, Any], where: str = "", **fixed: Any):
    """``cls(**data, **fixed)``, refusing unknown keys (with the closest known one).

    ``where`` prefixes messages (e.g. ``"campaigns/pilot.toml [run]"``). Ints
    are accepted for float settings.
    """
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            guess = closest(key, known)
            hint = f" (did you mean {guess!r}?)" if guess else ""
            raise ConfigError(f"{where + ': ' if where else ''}unknown setting {key!r}{hint}; valid: "
                              f"{', '.join(sorted(known))}.")
    fields = settings_of(cls)
    values = {k: float(v) if k in fields and fields[k].metadata["kind"] is float and type(v) is int else v
              for k, v in data.items()}
    try:
        return cls(**values, **fixed)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None


# --- the command line --------------------------------------------------------------------
class _Given(argparse.Action):
    """Stores the value and records that the user gave it (see ``given``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        _record(namespace, self.dest)


class _GivenBool(argparse.BooleanOptionalAction):
    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        _record(namespace, self.dest)


def _record(namespace: argparse.Namespace, dest: str) -> None:
    namespace.__dict__.setdefault("_given", set()).add(dest)


def given(args: argparse.Namespace) -> set[str]:
    """The names of the settings the user gave on the command line."""
    return set(getattr(args, "_given", set()))


def _parser_for(kind: type, flag: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{flag} {text!r} is not {what}") from None
    return parse


def add_flags(parser: argparse.ArgumentParser, cls, only: Iterable[str] | None = None,
              skip: Iterable[str] = (), defaults: Mapping[str, Any] | None = None,
              help: Mapping[str, str] | None = None) -> None:
    """Add a flag for each setting of ``cls`` (``only`` these, minus ``skip``).

    ``defaults`` and ``help`` replace a field's default or help for this
    command (e.g. a study scores every 5 epochs by default).
    """
    fields = settings_of(cls)
    names = [n for n in (only if only is not None else fields) if n not in set(skip)]
    groups: dict[str, Any] = {}
    for name in names:
        field = fields[name]
        meta = field.metadata
        if not meta["cli"]:
            continue
        default = (defaults or {}).get(name, field.default if field.default is not dataclasses.MISSING
                                       else (field.default_factory() if field.default_factory
                                             is not dataclasses.MISSING else None))
        text = (help or {}).get(name, meta["help"])
        if default is not None and default is not False and default != "" and "default" not in text:
            text += f" (default: {default})"
        target = parser
        if meta["group"]:
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_argument_group(meta["group"])
            target = groups[meta["group"]]
        flags = [flag_of(field), *meta["aliases"]]
        if meta["kind"] is bool:
            target.add_argument(*flags, dest=name, action=_GivenBool, default=default, help=text)
            continue
        kind = meta["kind"]
        target.add_argument(*flags, dest=name, action=_Given, default=default, help=text,
                            type=_parser_for(kind, flags[0]) if kind in (int, float) else None,
                            choices=meta["choices"], metavar=meta["metavar"])


def values(args: argparse.Namespace, cls, names: Iterable[str] | None = None) -> dict[str, Any]:
    """The values of ``cls``'s settings held by ``args`` (given or default)."""
    fields = {n: f for n, f in settings_of(cls).items() if f.metadata["cli"]}  # only what flags set
    return {n: getattr(args, n) for n in (names or fields) if n in fields and hasattr(args, n)}
