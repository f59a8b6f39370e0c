"""A campaign plan: which variants on which datasets with which seeds, read from TOML and checked.

    name = "pilot"
    datasets = ["horses", "birds"]            # any dataset name `run` accepts
    seeds = [0, 1, 2]
    variants = ["animals_baseline", "bn"]     # an explicit list, and/or:

    [grid]
    base = "animals_baseline"
    axes = "one-at-a-time"                    # the base plus every single-axis change of it,
    tokens = ["bn", "kernel4", "inline"]      #   optionally only these changes;
    # axes = ["batchnorm", "kernel"]          # or every combination of the listed axes

    [run]                                     # any `run` setting, for every cell
    epochs = 10
    max_images = 2000
    eval_every = 10

    [dataset.birds]                           # `run` settings for one dataset
    epochs = 20

    from_studies = false                      # true: each cell's hyperparameters from the best
                                              # trial of its `<class>-<variant>` study

    [hypotheses]                              # what the report may conclude, declared before it runs
    primary = [{arm = "bn", metric = "kid", direction = "two-sided", alpha = 0.05}]
    margin = 0.10                             # other arms: equivalent within ±10% of the base?
    family = []                               # arms joining the primary ones in the Holm family
    control = true                            # an A/A arm (the base, LeakyReLU written the other way)
    sd_guess = 0.15                           # seed-to-seed spread for the power estimate

    (every key of [hypotheses] is in harness/campaign/hypotheses.py)

A cell is (dataset, variant, seed) plus those settings: one ordinary run,
tagged with the campaign and the cell. Everything is checked here, before
anything trains: unknown keys, names, types and values, each error naming
its key.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from harness import flags
from harness.campaign.hypotheses import read_hypotheses
from harness.campaign.tuning import Tuning, read_tuning
from harness.config import NOT_IN_PLAN, RunConfig
from harness.errors import ConfigError, check_keys
from harness.stats.design import Hypotheses
from harness.train.precision import passed_equivalence
from studies.best import study_best_config
from studies.settings import default_study_name
from studies.space import SEARCHED_FIELDS
from variants import BASELINE, resolve
from variants.grammar import grid_names

TOP_KEYS = ("name", "datasets", "seeds", "variants", "grid", "run", "dataset", "from_studies", "experiment",
            "hypotheses", "tuning")
GRID_KEYS = ("base", "axes", "tokens")

from harness.store.schema import CAMPAIGN_TAG as TAG  # noqa: E402  (names kept for importers)
from harness.store.schema import CELL_TAG, HASH_TAG, SETTINGS_TAG, settings_md5  # noqa: E402

MAX_CELLS = 10_000  # cells a plan may have unless --max-cells says otherwise
SECONDS_PER_CELL = 0.001  # building and checking one cell's config (measured on one shared core)


@dataclass(frozen=True)
class Cell:
    """One (dataset, variant, seed) of a campaign and the run config that trains it."""

    dataset: str
    variant: str
    seed: int
    config: RunConfig

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.variant}/s{self.seed}"

    # Cached: resolving and hashing a config takes a millisecond, and a plan, its status and
    # its dry run ask each cell's several times (a 10,000-cell plan: seconds each time).
    @functools.cached_property
    def settings(self) -> dict[str, Any]:
        """What the cell trains and how it is scored (a change makes it another cell)."""
        return self.config.resolved().identifying_fields()

    @functools.cached_property
    def settings_md5(self) -> str:
        return settings_md5(self.settings)


@dataclass(frozen=True)
class Plan:
    """A checked plan: its name, where it came from, and its cells in running order."""

    name: str
    path: str
    text: str
    cells: tuple[Cell, ...]
    datasets: tuple[str, ...]
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    notes: tuple[str, ...] = field(default=())  # e.g. variants dropped as duplicates
    hypotheses: Hypotheses | None = None  # the declared analysis ([hypotheses] or its defaults)
    tuning: Tuning | None = None  # [tuning]: each arm searched alike, its cells trained with its winner


def load_plan(path: str | Path, *, tracking_uri: str | None = None, checkpoint_dir: str | None = None,
              study_storage: str | None = None, max_cells: int = MAX_CELLS) -> Plan:
    """Read and check the plan at ``path``; ``tracking_uri``/``checkpoint_dir`` are this machine's.

    Raises ConfigError naming the key for every mistake in the plan, and for a plan of more
    than ``max_cells`` cells.
    """
    path = Path(path)
    try:
        text = path.read_text()
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"campaign plan {str(path)!r} does not exist; write one (see campaigns/pilot.toml).") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"campaign plan {str(path)!r} is not valid TOML: {exc}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"campaign plan {str(path)!r} cannot be read: {exc}.") from None
    where = str(path)
    check_keys(raw, TOP_KEYS, where)
    name = _get(raw, "name", str, where)
    if not name or not all(c.isalnum() or c in "-_." for c in name) or set(name) == {"."}:
        raise ConfigError(f"{where}: name {name!r} must be letters, digits, '-', '_' or '.', e.g. name = \"pilot\".")
    datasets = _list(raw, "datasets", str, where)
    seeds = _list(raw, "seeds", int, where)
    if len(set(seeds)) != len(seeds) or len(set(datasets)) != len(datasets):
        raise ConfigError(f"{where}: datasets and seeds must not repeat.")
    variants, notes = _variants(raw, where)
    grid_base = raw["grid"].get("base", BASELINE.name) if isinstance(raw.get("grid"), dict) else None
    planned = variants
    hypotheses, variants = read_hypotheses(raw.get("hypotheses"), variants,
                                           grid_base if grid_base in variants else variants[0], where)
    notes += [f"control arm {name!r} added: the base's function under another name (control = false "
              "leaves it out)" for name in variants[len(planned):]]
    run = dict(raw.get("run", {}))
    _settings(run, f"{where} [run]")
    per_dataset = raw.get("dataset", {})
    if not isinstance(per_dataset, dict):
        raise ConfigError(f"{where}: [dataset.NAME] tables hold run settings for one dataset.")
    for key, table in per_dataset.items():
        if key not in datasets:
            raise ConfigError(f"{where}: [dataset.{key}] names no dataset of the plan ({', '.join(datasets)}).")
        _settings(table, f"{where} [dataset.{key}]")
    from_studies = _get(raw, "from_studies", bool, where, False)
    tuning = read_tuning(raw.get("tuning"), planned, seeds, [run, *per_dataset.values()], from_studies, where)
    machine = {k: v for k, v in (("tracking_uri", tracking_uri), ("checkpoint_dir", checkpoint_dir)) if v}
    if raw.get("experiment") is not None:
        run.setdefault("experiment", _get(raw, "experiment", str, where))

    count = len(datasets) * len(variants) * len(seeds)
    if count > max_cells:
        raise ConfigError(f"{where}: {count} cells ({len(datasets)} datasets x {len(variants)} variants x "
                          f"{len(seeds)} seeds) is above the cap of {max_cells}: checking each cell takes about "
                          f"{SECONDS_PER_CELL * 1000:.0f} ms (~{count * SECONDS_PER_CELL / 60:.0f} min here) and "
                          f"training them far longer. Split the plan, or pass --max-cells {count} if you mean it.")
    # Arms of one comparison train in one precision: under `auto`, an arm shown to train the same in
    # bfloat16 could take it while another stays float32, and the comparison would measure both.
    unproven = [v for v in variants if not passed_equivalence(v)]
    if unproven and any(s.get("precision", "auto") == "auto" for s in [run, *per_dataset.values()]):
        notes.append(f"precision auto trains every arm in float32: {', '.join(unproven)} "
                     "not shown to train the same in bfloat16 (benchmarks/precision_equivalence.json)")
    cells = []
    for dataset, variant, seed in itertools.product(datasets, variants, seeds):
        settings = {**run, **per_dataset.get(dataset, {})}
        cell_where = f"{where} (cell {dataset}/{variant}/s{seed})"
        config = flags.build(RunConfig, {**settings, **machine, "variant": variant, "dataset": dataset,
                                         "seed": seed}, cell_where)
        if unproven and config.precision == "auto":
            config = config.replace(precision="float32")
        if from_studies:
            config = _from_study(config, set(settings), study_storage, cell_where)
        cells.append(tagged(Cell(dataset, variant, seed, config), name, f"{name}-{dataset}-{variant}-s{seed}"))
    return Plan(name, str(path), text, tuple(cells), tuple(datasets), tuple(variants), tuple(seeds), tuple(notes),
                hypotheses, tuning=tuning)


def tagged(cell: Cell, campaign: str, run_name: str, **extra: str) -> Cell:
    """``cell`` with the tags that find its run again: the campaign, the cell's key and its settings."""
    tags = {TAG: campaign, CELL_TAG: cell.key, HASH_TAG: cell.settings_md5,
            SETTINGS_TAG: json.dumps(cell.settings, sort_keys=True), **extra}
    new = dataclasses.replace(cell, config=cell.config.replace(tags=tags, run_name=run_name))
    # Tags and run names identify nothing: the settings and their hash carry over.
    new.__dict__.update(settings=cell.settings, settings_md5=cell.settings_md5)
    return new


def _variants(raw: dict, where: str) -> tuple[list[str], list[str]]:
    """The plan's variant names: the explicit list, then the grid's; duplicates of one
    architecture (e.g. ``animals_baseline`` and ``nobn``) are kept once."""
    names = list(_list(raw, "variants", str, where, required=False))
    grid = raw.get("grid")
    if grid is not None:
        if not isinstance(grid, dict):
            raise ConfigError(f"{where}: grid must be a table ([grid] with base, axes, tokens).")
        check_keys(grid, GRID_KEYS, f"{where} [grid]")
        base = _get(grid, "base", str, f"{where} [grid]", BASELINE.name)
        resolve(base)
        names += grid_names(base, grid.get("axes", "one-at-a-time"), grid.get("tokens"), f"{where} [grid]")
    if not names:
        raise ConfigError(f"{where}: no variants; give variants = [...] or a [grid] table.")
    kept, seen, notes = [], {}, []
    for name in names:
        spec = resolve(name)  # an unknown name fails here, naming the valid tokens
        identity = json.dumps({k: v for k, v in spec.to_params().items() if k != "name"}, sort_keys=True)
        if identity in seen:
            if name != seen[identity]:
                notes.append(f"variant {name!r} is the same architecture as {seen[identity]!r}; kept once")
            continue
        seen[identity] = name
        kept.append(name)
    return kept, notes


def _from_study(config: RunConfig, given: set[str], storage: str | None, where: str) -> RunConfig:
    """``config`` with the hyperparameters of its ``<class>-<variant>`` study's best trial
    (settings the plan gives explicitly win)."""
    name = default_study_name(config.dataset, config.variant)
    try:
        best = study_best_config(name, storage, log=lambda *_: None)
    except ConfigError as exc:
        raise ConfigError(f"{where}: from_studies = true needs study {name!r}: {exc}") from None
    return config.replace(**{k: getattr(best, k) for k in SEARCHED_FIELDS if k not in given})


# --- strict reading -------------------------------------------------------------------
def _settings(table: Any, where: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of run settings, e.g. epochs = 10.")
    for key in table:
        if key in NOT_IN_PLAN:
            raise ConfigError(f"{where}: {key!r} is set per cell or per machine, not in a plan"
                              + (" (pass --tracking-uri / --checkpoint-dir to the command)"
                                 if key in ("tracking_uri", "checkpoint_dir") else "") + ".")
    flags.build(RunConfig, {"variant": BASELINE.name, "dataset": "horses", **table}, where)


def _get(table: dict, key: str, kind: type, where: str, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise ConfigError(f"{where}: missing {key!r}.")
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: {key} = {value!r} must be {kind.__name__}.")
    return value


def _list(table: dict, key: str, kind: type, where: str, required: bool = True) -> list:
    if key not in table:
        if required:
            raise ConfigError(f"{where}: missing {key!r} (a list).")
        return []
    value = table[key]
    if (not isinstance(value, list) or (required and not value)
            or not all(isinstance(v, kind) and not (kind is int and isinstance(v, bool)) for v in value)):
        raise ConfigError(f"{where}: {key} must be a non-empty list of {kind.__name__}s, e.g. "
                          + ("[0, 1, 2]." if kind is int else "[\"horses\"]."))
    return value
