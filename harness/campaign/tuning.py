"""A plan's ``[tuning]`` table: every arm searched alike, then compared on fresh seeds.

    seeds = [0, 1]              # the plan's seeds are the CONFIRMATION seeds: the cells compared

    [tuning]
    trials = 8                  # trials per arm (dataset x variant), the same for every arm
    seeds = [100]               # tuning seeds: trial i trains on seeds[i % len(seeds)];
                                #   none of them may be a confirmation seed
    metric = "kid"              # what picks each arm's best trial (lower is better); scored on the
                                #   held-out test split where the dataset has one
    epochs = 2                  # optional: each trial's length (default: the plan's epochs)

    [tuning.space]              # optional; these three are the default
    g_lr = {low = 1e-5, high = 1e-2, log = true}
    d_lr = {low = 1e-5, high = 1e-2, log = true}
    beta_1 = {low = 0.0, high = 0.9}

Why these rules (Lucic et al. 2018, "Are GANs created equal?"): a design can
look better only because its defaults suit it, so every arm gets the same
number of trials of the same length; and the best of many trials on one seed
is optimistic for that seed (the winner's curse), so the compared cells train
each arm's winning settings again on seeds no trial used.

The search is random: trial i draws its settings from a generator seeded by
i and the tuning seeds, so every arm is tried at the same points (a paired
comparison), a rerun draws the same ones, and the trials of an arm are
independent draws, which the budget curves (``harness.stats.expected_best``)
assume. ``beta_1`` is one Adam beta_1 for both networks, as in the studies'
space (``studies.space``): a separate pair would add a dimension that the
same budget must cover. The searchable settings are ``g_lr``, ``d_lr``,
``beta_1`` and ``label_smoothing``; epochs and batch size are the plan's,
since they set a trial's length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import ConfigError, check_keys
from harness.stats.design import METRICS, lower_is_better
from studies.space import Choice, Range, Space, check, from_json, run_fields, to_json

KEYS = ("trials", "seeds", "metric", "epochs", "space")
SEARCHABLE = ("g_lr", "d_lr", "beta_1", "label_smoothing")


def default_space() -> Space:
    return {"g_lr": Range(1e-5, 1e-2, log=True), "d_lr": Range(1e-5, 1e-2, log=True), "beta_1": Range(0.0, 0.9)}


@dataclass(frozen=True)
class Tuning:
    """A checked ``[tuning]`` table."""

    trials: int  # per arm
    seeds: tuple[int, ...]  # tuning seeds
    metric: str
    space: Space = field(default_factory=default_space)
    epochs: int | None = None  # each trial's epochs (None: the plan's)

    @property
    def lower_is_better(self) -> bool:
        return bool(lower_is_better(self.metric))

    def seed_of(self, number: int) -> int:
        return self.seeds[number % len(self.seeds)]

    def draws(self) -> list[dict[str, Any]]:
        """The sampled search parameters of trials 0 .. trials-1 (the same for every arm)."""
        out = []
        for number in range(self.trials):
            rng = np.random.default_rng([number, *(s % 2**32 for s in self.seeds)])
            params: dict[str, Any] = {}
            for name in sorted(self.space):
                dist = self.space[name]
                if isinstance(dist, Range) and dist.log:
                    params[name] = float(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high))))
                elif isinstance(dist, Range):
                    params[name] = float(rng.uniform(dist.low, dist.high))
                elif isinstance(dist, Choice):
                    params[name] = dist.values[int(rng.integers(len(dist.values)))]
                else:
                    params[name] = dist
            out.append(params)
        return out

    def fields(self, params: dict[str, Any]) -> dict[str, Any]:
        """The run config fields ``params`` set (``beta_1`` sets both networks')."""
        return run_fields(params)

    def to_dict(self) -> dict[str, Any]:
        return {"trials": self.trials, "seeds": list(self.seeds), "metric": self.metric, "epochs": self.epochs,
                "space": to_json(self.space)}


def read_tuning(table: Any, variants: list[str], plan_seeds: list[int], settings: list[dict[str, Any]],
                from_studies: bool, where: str) -> Tuning | None:
    """The checked ``[tuning]`` table (None when the plan has none); ``settings`` are the plan's
    [run] and [dataset.NAME] tables. ConfigError names the key."""
    if table is None:
        return None
    where = f"{where} [tuning]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, e.g. [tuning] trials = 8, seeds = [100], metric = \"kid\".")
    check_keys(table, KEYS, where)
    if from_studies:
        raise ConfigError(f"{where}: from_studies = true and [tuning] both choose the hyperparameters; "
                          "drop from_studies (the [tuning] search replaces it).")
    trials = _trials(table.get("trials"), variants, where)
    seeds = table.get("seeds")
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ConfigError(f"{where}: seeds must be a non-empty list of distinct whole numbers (the tuning "
                          "seeds), e.g. seeds = [100].")
    shared = sorted(set(seeds) & set(plan_seeds))
    if shared:
        raise ConfigError(f"{where}: seeds {shared} are also the plan's seeds (the confirmation seeds); the "
                          "cells compared must train on seeds no trial used: pick other tuning seeds.")
    metric = table.get("metric", "kid")
    if metric not in METRICS:
        raise ConfigError(f"{where}: metric = {metric!r} is not a metric a run logs to choose by; use one of "
                          f"{', '.join(METRICS)} (lower is better).")
    if any(table.get("eval_every") == 0 for table in settings):
        raise ConfigError(f"{where}: metric = {metric!r} is never logged with eval_every = 0 in the plan's "
                          "settings; drop eval_every or set it above 0.")
    if any(table.get("eval_reference") == "train" for table in settings):
        raise ConfigError(f"{where}: the trials must be scored on held-out images, not with eval_reference = "
                          "\"train\" in the plan's settings; drop eval_reference (the test split where the "
                          "dataset has one).")
    epochs = table.get("epochs")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ConfigError(f"{where}: epochs = {epochs!r} must be a whole number of at least 1 (every "
                          "trial's length, the same for every arm).")
    return Tuning(trials, tuple(seeds), metric, _space(table.get("space"), where), epochs)


def _trials(value: Any, variants: list[str], where: str) -> int:
    """Trials per arm: one number, or ``{variant = n}`` for every variant, all equal."""
    if isinstance(value, dict):
        missing = [v for v in variants if v not in value]
        extra = [k for k in value if k not in variants]
        if missing or extra:
            raise ConfigError(f"{where}: trials names {'no arm ' + repr(extra[0]) if extra else 'no count for ' + repr(missing[0])}"
                              f"; every arm ({', '.join(variants)}) gets the same count, e.g. trials = 8.")
        counts = set(value.values())
        if len(counts) > 1:
            raise ConfigError(f"{where}: trials differ between arms ({', '.join(f'{k} = {v}' for k, v in value.items())}); "
                              "an equal-budget comparison gives every arm the same number, e.g. trials = 8.")
        value = counts.pop()
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: trials = {value!r} must be a whole number of at least 1 (trials per arm), "
                          "e.g. trials = 8.")
    return value


def _space(raw: Any, where: str) -> Space:
    if raw is None:
        return default_space()
    where = f"{where.removesuffix(' [tuning]')} [tuning.space]"
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: the search space is empty; give at least one setting, e.g. "
                          "g_lr = {low = 1e-5, high = 1e-2, log = true}, or drop [tuning.space] for the default.")
    for name, value in raw.items():
        if name not in SEARCHABLE:
            raise ConfigError(f"{where}: {name!r} cannot be searched here; searchable: {', '.join(SEARCHABLE)} "
                              "(epochs and batch size are the plan's: they set a trial's length).")
        if isinstance(value, dict) and {"low", "high"} <= set(value):
            low, high = value["low"], value["high"]
            if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low >= high:
                raise ConfigError(f"{where}: {name} has low {low} >= high {high}; give low < high, or a single "
                                  f"value ({name} = {low}) to fix it.")
    try:
        space = from_json(dict(raw))
        check(space)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not any(isinstance(d, (Range, Choice)) for d in space.values()):
        raise ConfigError(f"{where}: nothing is searched (every setting is fixed); give at least one range, "
                          "e.g. g_lr = {low = 1e-5, high = 1e-2, log = true}.")
    return space
