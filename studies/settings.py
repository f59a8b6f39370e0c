"""One study's settings: a run configuration that every trial starts from, plus the study's own.

The study's own fields are settings (harness/flags.py) like the run's, so
``study``'s flags are the run's (minus what the study searches) and these.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from harness import config, flags
from harness.config import RunConfig
from harness.data.registry import class_name
from harness.errors import ConfigError
from harness.flags import positive, setting
from harness.store.urls import redact
from studies import space as spaces
from studies import storage as storages

OBJECTIVES = ("fid", "kid")
SAMPLERS = ("tpe", "random", "cmaes", "grid")
PRUNERS = ("median", "hyperband", "none")
# Run settings a study does not take as flags: it searches them (--param sets them)
# or names its trial runs itself (their roles in harness/config.py say which).
NOT_STUDY_FLAGS = config.NOT_STUDY_FLAGS
# Run settings whose default differs for a study: it must score trials.
STUDY_DEFAULTS = {"eval_every": 5}


@dataclass(frozen=True)
class StudySettings:
    """One study: the run every trial starts from, what is searched, how, where it is stored."""

    run: RunConfig = setting(help="the run every trial starts from", kind=RunConfig, cli=False)
    trials: int = setting(kind=int, check=positive,
                          help="the total the study should reach, counting earlier trials")
    study_name: str | None = setting(None, kind=str, help="default: <class>-<variant>; with several "
                                                          "datasets a prefix")
    storage: str | None = setting(None, kind=str, help="sqlite:///optuna.db (default, one worker), "
                                  "journal:optuna.journal (default with --workers), or postgresql://user@host/db")
    workers: int = setting(1, check=positive, help="worker processes on this machine")
    objective: str = setting("fid", choices=OBJECTIVES, help="minimised at the last epoch")
    sampler: str = setting("tpe", choices=SAMPLERS, help="how trials are proposed")
    pruner: str = setting("median", choices=PRUNERS, help="how poor trials are stopped early")
    space: dict[str, Any] = setting(factory=dict, cli=False,
                                    help="the search space in JSON form; empty: the default space")
    search_label_smoothing: bool = setting(False, flag="--label-smoothing", group="search space",
                                           help="also search label smoothing 0..0.2")

    def __post_init__(self) -> None:
        flags.validate(self)
        if self.run.eval_every is not None and self.run.eval_every < 1:  # None: about 5 evaluations
            raise ConfigError(f"--eval-every={self.run.eval_every}: a study scores trials by "
                                    f"{self.objective.upper()}, so it must evaluate; give 1 or more.")
        self.search_space()  # a bad space fails now, naming the parameter

    @property
    def class_name(self) -> str:
        return self.run.class_name

    @property
    def name(self) -> str:
        return self.study_name or default_study_name(self.run.dataset, self.run.variant)

    @property
    def storage_url(self) -> str:
        return storages.normalise(self.storage, self.workers)

    def search_space(self) -> spaces.Space:
        default = spaces.default_space(self.class_name, self.search_label_smoothing)
        return spaces.check({**default, **spaces.from_json(self.space)})

    def base_config(self) -> RunConfig:
        """The run config every trial starts from (sampled fields replaced per trial)."""
        return self.run.replace(tags={**self.run.tags, "optuna.storage": redact(self.storage_url)}).resolved()

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StudySettings:
        data = json.loads(text)
        return cls(**{**data, "run": RunConfig.from_dict(data["run"])})


def default_study_name(dataset: str, variant: str) -> str:
    """``horses-bn_kernel4``; a source prefix is kept (``animals10-horses-bn``)."""
    source = dataset.split(":", 1)[0] if ":" in dataset else ""
    prefix = f"{source}-" if source and source not in ("folder", "cifar10") else ""
    return f"{prefix}{class_name(dataset)}-{variant}"
