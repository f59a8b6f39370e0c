"""``run --from-study``: the run config of a study's best trial."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.config import RunConfig
from harness.errors import ConfigError
from harness.store.urls import redact
from studies import space as spaces
from studies import storage as storages
from studies.optimize import RUN_CONFIG_ATTR

# Optuna is imported inside functions: the CLI imports this module (`run
# --from-study`), and `--help`, `variants` and `datasets` must not load it.


def study_best_config(study_name: str, storage: str | None, given: dict[str, Any] | None = None,
                      log=print) -> RunConfig:
    """The config that trains ``study_name``'s best trial: the study's base run config, the
    trial's params, then ``given`` (settings the user gave explicitly, which win)."""
    import optuna

    url = storages.normalise(storage, 1) if storage else _existing_default(study_name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=storages.open_storage(url))
    except KeyError:
        names = optuna.get_all_study_names(storages.open_storage(url))
        raise ConfigError(f"--from-study: no study {study_name!r} in {redact(url)}; studies there: "
                          f"{', '.join(names) or 'none'}. Pass --storage where it lives.") from None
    try:
        best = study.best_trial
    except ValueError:
        raise ConfigError(f"--from-study: study {study_name!r} has no COMPLETE trial yet; run more "
                          "trials (`python -m harness study ...`).") from None
    given = dict(given or {})
    for key in ("variant", "dataset"):
        if given.get(key) not in (None, study.user_attrs[key]):
            raise ConfigError(f"--{key} {given[key]!r} differs from study {study_name!r}'s "
                              f"{study.user_attrs[key]!r}; drop --{key} or pick another study.")
    params = {**{k[len("fixed_"):]: v for k, v in best.user_attrs.items() if k.startswith("fixed_")},
              **best.params}
    attrs = study.user_attrs
    if RUN_CONFIG_ATTR in attrs:
        base = json.loads(attrs[RUN_CONFIG_ATTR])
    else:  # a study created before the base config was stored whole
        base = {k: attrs[k] for k in ("variant", "dataset", "max_images", "width", "image_size", "seed")
                if attrs.get(k) is not None}
    tags = {"optuna.study_name": study_name, "optuna.best_trial": str(best.number)}
    config = RunConfig.from_dict({**base, **spaces.run_fields(params), "run_name": f"{study_name}-best",
                                  **given, "tags": tags})
    log(f"from study {study_name}: trial {best.number} ({attrs.get('objective', 'fid')} {best.value:.4g})")
    return config


def _existing_default(study_name: str) -> str:
    """The default storage that holds ``study_name`` (SQLite first, then the journal)."""
    import optuna

    for url in (storages.DEFAULT_SQLITE, storages.DEFAULT_JOURNAL):
        path = Path(url.split(":", 1)[1].lstrip("/") if url.startswith("journal:") else url[len("sqlite:///"):])
        if path.exists() and study_name in optuna.get_all_study_names(storages.open_storage(url)):
            return url
    raise ConfigError(f"--from-study: no study {study_name!r} in ./optuna.db or ./optuna.journal; "
                      "pass --storage where the study lives.")
