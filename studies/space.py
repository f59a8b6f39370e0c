"""The search space of a study: which run settings a trial samples, and from what.

A space is a plain dict from a parameter name to one of

    Range(low, high, log)   a float (or, for ``epochs``, an int) between low and high
    Choice(values)          one of a short list (batch sizes, or a fixed grid)
    a single value          fixed for every trial

Parameters: ``g_lr``, ``d_lr`` (searched independently), ``beta_1`` (Adam's,
for both networks), ``epochs``, ``batch_size`` and, optionally,
``label_smoothing``. ``default_space(class)`` is the space a study searches
unless told otherwise; ``parse_param`` reads the CLI's ``--param NAME=SPEC``
and ``load_space_file`` a JSON or Python space file.
"""

from __future__ import annotations

import json
import math
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import DEFAULT_EPOCHS, FALLBACK_EPOCHS
from harness.errors import ConfigError, unknown_name

INT_PARAMS = ("epochs", "batch_size")
FLOAT_PARAMS = ("g_lr", "d_lr", "beta_1", "label_smoothing")
PARAMS = FLOAT_PARAMS + INT_PARAMS
LOG_BY_DEFAULT = ("g_lr", "d_lr")  # learning rates span decades
# Search parameter -> the run config fields it sets (one beta_1 for both networks).
RUN_FIELDS: dict[str, tuple[str, ...]] = {
    "g_lr": ("g_lr",), "d_lr": ("d_lr",), "beta_1": ("g_beta_1", "d_beta_1"),
    "label_smoothing": ("label_smoothing",), "epochs": ("epochs",), "batch_size": ("batch_size",),
}
SEARCHED_FIELDS = tuple(field for fields in RUN_FIELDS.values() for field in fields)
BATCH_SIZES = (64, 128, 256)


@dataclass(frozen=True)
class Range:
    """A value between ``low`` and ``high`` (log-uniform when ``log``)."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """One of ``values``."""

    values: tuple[Any, ...]


Space = dict[str, Any]  # name -> Range | Choice | fixed value


def default_space(class_name: str, label_smoothing: bool = False) -> Space:
    """The default search for a class: learning rates 1e-5..1e-2, beta_1, epochs around
    the class's published count (half to one and a half times), a batch size."""
    epochs = DEFAULT_EPOCHS.get(class_name, FALLBACK_EPOCHS)
    space: Space = {
        "g_lr": Range(1e-5, 1e-2, log=True),
        "d_lr": Range(1e-5, 1e-2, log=True),
        "beta_1": Range(0.0, 0.9),
        "epochs": Range(max(1, epochs // 2), max(1, epochs * 3 // 2)),
        "batch_size": Choice(BATCH_SIZES),
    }
    if label_smoothing:
        space["label_smoothing"] = Range(0.0, 0.2)
    return space


def check(space: Space) -> Space:
    """Validate ``space`` (names, bounds, types); returns it. Raises ConfigError."""
    for name, dist in space.items():
        if name not in PARAMS:
            raise unknown_name("search parameter", name, PARAMS)
        values = [dist.low, dist.high] if isinstance(dist, Range) else (
            list(dist.values) if isinstance(dist, Choice) else [dist])
        if not values:
            raise ConfigError(f"search parameter {name}: an empty choice; give at least one value.")
        for value in values:
            _check_value(name, value)
        if isinstance(dist, Range):
            if dist.low > dist.high:
                raise ConfigError(f"search parameter {name}: low {dist.low} is above high {dist.high}.")
            if dist.log and dist.low <= 0:
                raise ConfigError(f"search parameter {name}: a log range needs low > 0, got {dist.low}.")
    return space


def suggest(trial, space: Space) -> dict[str, Any]:
    """Sample every parameter of ``space`` with ``trial`` (an optuna Trial); fixed values
    are recorded as the trial's user attrs so that the trial still says what it ran."""
    params: dict[str, Any] = {}
    for name, dist in space.items():
        if isinstance(dist, Range) and name in INT_PARAMS:
            params[name] = trial.suggest_int(name, int(dist.low), int(dist.high), log=dist.log)
        elif isinstance(dist, Range):
            params[name] = trial.suggest_float(name, float(dist.low), float(dist.high), log=dist.log)
        elif isinstance(dist, Choice):
            params[name] = trial.suggest_categorical(name, list(dist.values))
        else:
            params[name] = dist
            trial.set_user_attr(f"fixed_{name}", dist)
    return params


def run_fields(params: dict[str, Any]) -> dict[str, Any]:
    """The run config fields that sampled ``params`` set (``RunConfig.replace(**run_fields(p))``)."""
    return {field: int(value) if name in INT_PARAMS else float(value)
            for name, value in params.items() for field in RUN_FIELDS[name]}


def grid(space: Space, points: int = 3) -> dict[str, list[Any]]:
    """The grid a grid sampler walks: choices as given, ranges as ``points`` values
    (log-spaced for log ranges), fixed values left out (they are not searched)."""
    out: dict[str, list[Any]] = {}
    for name, dist in space.items():
        if isinstance(dist, Choice):
            out[name] = list(dist.values)
        elif isinstance(dist, Range):
            if name in INT_PARAMS:
                lo, hi = int(dist.low), int(dist.high)
                out[name] = sorted({round(lo + (hi - lo) * i / (points - 1)) for i in range(points)})
            elif dist.log:
                a, b = math.log(dist.low), math.log(dist.high)
                inner = [math.exp(a + (b - a) * i / (points - 1)) for i in range(1, points - 1)]
                out[name] = [dist.low, *inner, dist.high]  # exact ends: exp(log(x)) drifts out of range
            else:
                inner = [dist.low + (dist.high - dist.low) * i / (points - 1) for i in range(1, points - 1)]
                out[name] = [dist.low, *inner, dist.high]
    return out


def parse_param(text: str) -> tuple[str, Any]:
    """Read one ``--param``: ``NAME=LOW:HIGH[:log]`` (a range), ``NAME=A,B,C`` (a choice)
    or ``NAME=VALUE`` (fixed). ``g_lr=1e-4:1e-3``, ``batch_size=32,64``, ``beta_1=0.5``."""
    name, sep, spec = text.partition("=")
    name, spec = name.strip().replace("-", "_"), spec.strip()
    if not sep or not spec:
        raise ConfigError(f"--param {text!r}: write NAME=LOW:HIGH, NAME=A,B,C or NAME=VALUE, "
                          "e.g. --param g_lr=1e-4:1e-3.")
    if name not in PARAMS:
        raise unknown_name("search parameter", name, PARAMS)
    number = int if name in INT_PARAMS else float
    try:
        if ":" in spec:
            parts = spec.split(":")
            log = parts[2:] == ["log"] or (len(parts) == 2 and name in LOG_BY_DEFAULT)
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("log", "linear")):
                raise ValueError
            dist: Any = Range(number(parts[0]), number(parts[1]), log=log)
        elif "," in spec:
            dist = Choice(tuple(number(v) for v in spec.split(",")))
        else:
            dist = number(spec)
    except ValueError:
        raise ConfigError(f"--param {text!r}: {spec!r} is not LOW:HIGH[:log|linear], A,B,C or one "
                          f"{number.__name__} value.") from None
    check({name: dist})
    return name, dist


def load_space_file(path: str | Path) -> Space:
    """Read a space from JSON (``{"g_lr": {"low": 1e-5, "high": 1e-2, "log": true},
    "batch_size": [64, 128], "beta_1": 0.5}``) or from a Python file defining ``SPACE``
    (a dict of ``Range``/``Choice``/values, or of the same JSON forms)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--space {str(path)!r} does not exist; pass a .json or .py space file.")
    if path.suffix == ".py":
        raw = runpy.run_path(str(path)).get("SPACE")
        if not isinstance(raw, dict):
            raise ConfigError(f"--space {str(path)!r} must define a dict named SPACE.")
    else:
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--space {str(path)!r} is not valid JSON: {exc}.") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"--space {str(path)!r} must hold a JSON object of parameters.")
    return from_json(raw)


def to_json(space: Space) -> dict[str, Any]:
    """A JSON-ready form of ``space`` (what ``load_space_file`` reads back)."""
    def one(dist: Any) -> Any:
        if isinstance(dist, Range):
            return {"low": dist.low, "high": dist.high, "log": dist.log}
        if isinstance(dist, Choice):
            return list(dist.values)
        return dist
    return {name: one(dist) for name, dist in space.items()}


def from_json(raw: dict[str, Any]) -> Space:
    """The space that ``to_json`` (or a JSON space file) wrote; checked."""
    return check({name: _one_from_json(name, value) for name, value in raw.items()})


def _one_from_json(name: str, value: Any) -> Any:
    if isinstance(value, (Range, Choice)):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"low", "high", "log"}
        if unknown or not {"low", "high"} <= set(value):
            raise ConfigError(f"space parameter {name}: a range is {{\"low\": .., \"high\": .., "
                              f"\"log\": false}}, got {value!r}.")
        return Range(value["low"], value["high"], bool(value.get("log", False)))
    if isinstance(value, list):
        return Choice(tuple(value))
    return value


def _check_value(name: str, value: Any) -> None:
    if name in INT_PARAMS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"search parameter {name}: {value!r} must be a positive whole number.")
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"search parameter {name}: {value!r} is not a number.")
    elif name in ("g_lr", "d_lr") and not 0 < value < 1:
        raise ConfigError(f"search parameter {name}: {value} must be in (0, 1), e.g. 2e-4.")
    elif name in ("beta_1", "label_smoothing") and not 0 <= value < 1:
        raise ConfigError(f"search parameter {name}: {value} must be in [0, 1).")
