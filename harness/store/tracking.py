"""The MLflow adapter: the only module that talks to the tracking store.

Writes are batched (one ``log_batch`` per epoch: per-call writes cost ~30 ms
on SQLite). The run is the fluent active run of this process, so that
``mlflow.pyfunc.log_model`` links the generator to it; every other write goes
through the client with an explicit run id.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from harness.errors import ConfigError, TrackingError
from harness.store.sqlite import check_sqlite_file, schema_lock
from harness.store.urls import redact

# MLflow (and harness.store.generator_model, which imports it) is imported inside the functions that
# use it: the commands import this module, and `--help`, `variants` and `datasets`
# must answer without loading MLflow.

PARAM_VALUE_LIMIT = 6000  # MLflow's limit on a param value's length


@dataclass(frozen=True)
class StoredRun:
    """One run as the store holds it, in plain values: what every module outside the store sees."""

    run_id: str
    experiment_id: str
    name: str
    status: str  # RUNNING, SCHEDULED, FINISHED, FAILED, KILLED
    start_time: int  # ms since the epoch
    end_time: int | None  # None while running
    params: dict[str, str]
    metrics: dict[str, float]  # the last logged value of each
    tags: dict[str, str]
    artifact_uri: str = ""

    @property
    def minutes(self) -> float | None:
        """Wall time from start to end; None while it runs."""
        return (self.end_time - self.start_time) / 60000 if self.end_time else None


def _stored(run) -> StoredRun:
    """The plain record of an ``mlflow.entities.Run``."""
    info, data = run.info, run.data
    return StoredRun(run_id=info.run_id, experiment_id=info.experiment_id, name=info.run_name or "",
                     status=info.status, start_time=info.start_time or 0, end_time=info.end_time or None,
                     params=dict(data.params), metrics=dict(data.metrics), tags=dict(data.tags),
                     artifact_uri=info.artifact_uri or "")


def ensure_store(uri: str) -> None:
    """Check that ``uri`` is reachable and writable, creating an SQLite store once.

    Raises ``TrackingError`` before any training starts, so a bad location
    fails in seconds instead of after the first epoch. An existing SQLite file
    is checked for damage (``PRAGMA quick_check``, read-only: a damaged store is
    never modified); a new one gets its schema under ``schema_lock``, so that
    processes starting at once on a store that does not exist yet all succeed.
    """
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):].split("?", 1)[0])
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise TrackingError(
                f"tracking store {public(uri)!r}: {str(folder)!r} {what}; create the folder or pass "
                "another --tracking-uri."
            )
        if path.is_dir():
            raise TrackingError(
                f"tracking store {public(uri)!r} names a folder, not a database file; pass a file in it, such as "
                f"--tracking-uri sqlite:///{path / 'mlflow.db'}."
            )
        if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise TrackingError(
                f"tracking store {public(uri)!r} is not writable; pass a --tracking-uri in a folder you "
                "can write to."
            )
        if not os.access(Path.cwd(), os.W_OK):
            raise TrackingError(
                f"artifacts go under ./mlruns, but {str(Path.cwd())!r} is not writable; run from a "
                "writable folder."
            )
        check_sqlite_file(path, uri)
        with schema_lock(path):
            _open_store(uri)
        return
    _check_server(uri)
    _open_store(uri)


_reachable: set[str] = set()  # tracking servers this process has reached


def _check_server(uri: str) -> None:
    """Raise TrackingError at once if ``uri`` is a tracking server that does not answer.

    MLflow's own client retries a dead server for minutes before it fails;
    every command that reaches tracking comes through here first (``client``).
    """
    if not uri.startswith(("http://", "https://")) or uri in _reachable:
        return
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).read()
    except Exception as exc:  # any network failure means the same to the user
        raise TrackingError(
            f"tracking server {public(uri)!r} is unreachable ({exc}); start it (e.g. `mlflow server "
            "--host 127.0.0.1`) or pass another --tracking-uri."
        ) from None
    _reachable.add(uri)


def _open_store(uri: str) -> None:
    """Open ``uri`` with MLflow (which creates a missing schema) and read from it once."""
    try:
        client(uri).search_experiments(max_results=1)
    except Exception as exc:
        raise TrackingError(f"tracking store {public(uri)!r} cannot be opened: {exc}") from None


def public(uri: str) -> str:
    """``uri`` as it may be shown or logged: without a password."""
    return redact(uri)


def client(uri: str):
    """An ``MlflowClient`` for ``uri`` (a server that does not answer is an error at once)."""
    from mlflow.tracking import MlflowClient

    _check_server(uri)
    _quiet_mlflow()
    return MlflowClient(tracking_uri=uri)


# MLflow 3's UI opens an experiment on its GenAI pages (traces, an assistant) unless the
# experiment says it holds model training; every harness experiment does.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def experiment_id(uri: str, name: str) -> str:
    """The id of experiment ``name``, created if it does not exist, marked as model training."""
    c = client(uri)
    found = c.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise TrackingError(
                f"experiment {name!r} is deleted in {public(uri)!r}; restore it (`mlflow experiments "
                "restore`) or pass another --experiment."
            )
        if found.tags.get(EXPERIMENT_KIND[0]) is None:
            c.set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND)
        return found.experiment_id
    try:
        return c.create_experiment(name, tags=dict([EXPERIMENT_KIND]))
    except Exception:  # created concurrently by another process
        return c.get_experiment_by_name(name).experiment_id


class RunLogger:
    """Writes to one MLflow run: params, batched metrics, images, files, the generator."""

    def __init__(self, uri: str, run_id: str):
        self.uri = uri
        self.run_id = run_id
        self.client = client(uri)

    # --- lifecycle ----------------------------------------------------------------
    @classmethod
    def start(cls, uri: str, experiment: str, run_name: str | None = None,
              tags: Mapping[str, str] | None = None, run_id: str | None = None) -> RunLogger:
        """Start a new run in ``experiment``, or continue ``run_id``."""
        import mlflow

        mlflow.set_tracking_uri(uri)
        if run_id is not None:
            try:
                client(uri).get_run(run_id)
            except Exception:
                raise TrackingError(
                    f"run {run_id} is not in tracking store {public(uri)!r}; pass the --tracking-uri it was "
                    "logged to, or start a new run without --resume."
                ) from None
            run = mlflow.start_run(run_id=run_id)
        else:
            run = mlflow.start_run(
                experiment_id=experiment_id(uri, experiment), run_name=run_name, tags=dict(tags or {})
            )
        return cls(uri, run.info.run_id)

    @classmethod
    def create(cls, uri: str, experiment: str, run_name: str | None = None,
               tags: Mapping[str, str] | None = None) -> RunLogger:
        """A new run in ``experiment`` that this process does not make its active run
        (parent runs of studies and campaigns)."""
        run = client(uri).create_run(experiment_id(uri, experiment), run_name=run_name, tags=dict(tags or {}))
        return cls(uri, run.info.run_id)

    def end(self, status: str, reason: str | None = None, *, best_effort: bool = False) -> None:
        """End the run as FINISHED, FAILED or KILLED, recording ``reason``.

        With ``best_effort`` (used while handling another error) a store that
        cannot be written is reported on stderr instead of raising, so the
        original error is the one the user sees.
        """
        import mlflow

        try:
            if reason:
                self.client.set_tag(self.run_id, "failure_reason", reason[:PARAM_VALUE_LIMIT])
            active = mlflow.active_run()
            if active is not None and active.info.run_id == self.run_id:
                mlflow.end_run(status=status)
            else:
                self.client.set_terminated(self.run_id, status=status)
        except Exception as exc:
            if not best_effort:
                raise self._write_error(exc) from None
            print(f"warning: could not mark run {self.run_id} {status} in {public(self.uri)!r} ({exc}); it may "
                  "still show as RUNNING.", file=sys.stderr)

    def _write_error(self, exc: Exception) -> TrackingError:
        return TrackingError(
            f"could not write run {self.run_id} to tracking store {public(self.uri)!r} ({type(exc).__name__}: "
            f"{exc}); the last checkpoint is kept: fix the store, then continue with --resume."
        )

    # --- values -------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params in batches; values already logged with the same value are skipped."""
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        new = [Param(k, str(v)[:PARAM_VALUE_LIMIT]) for k, v in params.items()
               if existing.get(k) != str(v)[:PARAM_VALUE_LIMIT]]
        for i in range(0, len(new), 100):
            self.client.log_batch(self.run_id, params=new[i:i + 100])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log all ``metrics`` at ``step`` in one write."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        if batch:
            try:  # one batch is one transaction: an epoch's metrics land all or not at all
                self.client.log_batch(self.run_id, metrics=batch)
            except Exception as exc:
                raise self._write_error(exc) from None

    def logged_steps(self, key: str) -> set[int]:
        """The steps at which metric ``key`` already has a value (used when resuming)."""
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    # --- files --------------------------------------------------------------------
    def log_png(self, image: np.ndarray, artifact_file: str) -> None:
        """Log a uint8 (H, W, C) array as a PNG at ``artifact_file``."""
        buffer = io.BytesIO()
        Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(buffer, "PNG")
        self.log_bytes(buffer.getvalue(), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.log_bytes(text.encode(), artifact_file)

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        folder, name = os.path.split(artifact_file)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            self.client.log_artifact(self.run_id, str(path), folder or None)

    def log_file(self, path: str | Path, artifact_dir: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_dir)

    def log_dataset(self, name: str, path: str, digest: str, count: int, context: str = "training") -> None:
        """Record the training data as a run input (name, source path, fingerprint)."""
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():  # local paths match two equivalent source types
            warnings.simplefilter("ignore")
            source = resolve_dataset_source(path)
        dataset = MetaDataset(source=source, name=name, digest=digest[:36])
        entity = dataset._to_mlflow_entity()
        tags = [InputTag("mlflow.data.context", context), InputTag("image_count", str(count))]
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(entity, tags)])

    def log_generator(self, generator, pip_requirements: list[str]) -> str:
        """Log ``generator`` as the pyfunc model ``generator`` of this run; return its model id.

        The model is ``harness/store/generator_model.py`` (logged from code) with the network
        as ``artifacts/generator.keras``: ``mlflow models serve`` and
        ``mlflow.pyfunc.load_model`` give images by count and seed, and
        ``harness.generators.sampling.load_generator`` gives back the Keras network.
        """
        import mlflow
        import mlflow.pyfunc

        from harness.store import generator_model as serving

        active = mlflow.active_run()
        if active is None or active.info.run_id != self.run_id:
            raise TrackingError("log_generator needs the run started by RunLogger.start.")
        if not any(re.split(r"[\s<>=!~\[;]", r.strip())[0] == "mlflow" for r in pip_requirements):
            pip_requirements = [*pip_requirements, f"mlflow=={mlflow.__version__}"]
        with tempfile.TemporaryDirectory() as tmp:
            keras_file = Path(tmp) / serving.KERAS_FILE
            generator.save(keras_file)
            info = mlflow.pyfunc.log_model(
                name="generator", python_model=serving.__file__,
                artifacts={serving.KERAS_ARTIFACT: str(keras_file)},
                signature=serving.signature(), input_example=serving.INPUT_EXAMPLE,
                pip_requirements=pip_requirements,
                metadata={"latent_dim": int(generator.input_shape[-1]),
                          "image_shape": [int(d) for d in generator.output_shape[1:]]},
            )
        return info.model_id

    def log_json(self, data: Any, artifact_file: str) -> None:
        self.log_text(json.dumps(data, indent=2, sort_keys=True, default=str), artifact_file)


def fetch_checkpoint(uri: str, run_id: str, folder: Path) -> bool:
    """Download the checkpoint logged at the end of ``run_id`` into ``folder``; False if it has none."""
    c = client(uri)
    try:
        logged = [f.path for f in c.list_artifacts(run_id, "checkpoints") if f.path.endswith(".npz")]
    except Exception:
        return False
    if not logged:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        local = Path(c.download_artifacts(run_id, sorted(logged)[-1], tmp))
        os.replace(local, folder / local.name)
    return True


def download_model(uri: str, model_uri: str) -> tuple[Path, dict[str, Any]]:
    """Download the MLflow model at ``model_uri``; return its local folder and the
    artifacts of its python_function flavour. Raises TrackingError saying what to check."""
    import mlflow

    client(uri)
    mlflow.set_tracking_uri(uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
        meta = mlflow.models.Model.load(str(local))
    except Exception as exc:
        raise TrackingError(f"model {model_uri!r} cannot be read from {public(uri)}: {_reason(exc)}; check "
                            "the URI (models:/NAME/VERSION, models:/NAME@ALIAS, runs:/ID/generator) "
                            "and --tracking-uri.") from None
    return local, meta.flavors.get("python_function", {}).get("artifacts", {})


def _reason(exc: Exception) -> str:
    """The first line of an (MLflow) exception's message, without a trailing period."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message.strip().splitlines()[0].rstrip(".")


def generator_uri(uri: str, run_id: str) -> str:
    """The ``models:/<model_id>`` URI of the generator logged by ``run_id``."""
    import mlflow

    run = client(uri).get_run(run_id)
    mlflow.set_tracking_uri(uri)
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = 'generator'",
        output_format="list",
    )
    if not models:
        raise TrackingError(
            f"run {run_id} has no logged generator (it may have failed before the end); "
            "pick a FINISHED run in the MLflow UI."
        )
    newest = max(models, key=lambda m: m.creation_timestamp)
    return f"models:/{newest.model_id}"


def _quiet_mlflow() -> None:
    # MLflow logs every SQLite migration and emoji "view run" link at INFO.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


# --- queries: every search of the store is written here --------------------------------
def quoted(value: str) -> str | None:
    """``value`` as a string literal of MLflow's filter grammar, or None when it holds both
    quote characters (the grammar has no escape; callers then match in Python)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def find_runs(uri: str, experiment: str | list[str], *, tags: Mapping[str, str] | None = None,
              status: str | None = None, not_status: str | None = None,
              order_by: tuple[str, ...] = ("attributes.start_time DESC",),
              max_results: int | None = None) -> list[StoredRun]:
    """The runs of ``experiment`` (a name, or several) whose tags equal ``tags`` and whose
    status is ``status`` (or is not ``not_status``), newest first, paged through.

    Every value is quoted safely; a value the filter grammar cannot spell is
    matched here instead. An experiment that does not exist has no runs.
    """
    names = [experiment] if isinstance(experiment, str) else list(experiment)
    if not names:  # nothing asked: no client, which would create a store that does not exist yet
        return []
    c = client(uri)
    ids = [e.experiment_id for e in (c.get_experiment_by_name(n) for n in names) if e is not None]
    if not ids:
        return []
    clauses, exact = [], dict(tags or {})
    for key, value in (tags or {}).items():
        literal = quoted(str(value))
        if literal is not None:
            clauses.append(f"tags.`{key}` = {literal}")
    if status:
        clauses.append(f"attributes.status = '{status}'")
    if not_status:
        clauses.append(f"attributes.status != '{not_status}'")
    found, token = [], None
    while True:
        page = c.search_runs(ids, " AND ".join(clauses), order_by=list(order_by),
                             max_results=min(1000, max_results or 1000), page_token=token)
        found += [_stored(r) for r in page if all(r.data.tags.get(k) == str(v) for k, v in exact.items())]
        token = page.token
        if not token or (max_results and len(found) >= max_results):
            return found[:max_results] if max_results else found


def experiment_exists(uri: str, name: str) -> bool:
    """Whether ``uri`` has an experiment called ``name`` (deleted ones count)."""
    return client(uri).get_experiment_by_name(name) is not None


def set_status(uri: str, run_id: str, status: str) -> bool:
    """Set run ``run_id``'s status (e.g. back to RUNNING); False when the store has no such run."""
    try:
        client(uri).update_run(run_id, status=status)
        return True
    except Exception:  # no such run (e.g. the store was replaced)
        return False


# --- the model registry -------------------------------------------------------------
def check_model_name(name: str) -> None:
    """Refuse a registered model name that ``models:/NAME/...`` URIs could not name."""
    if not name.strip() or "/" in name or "@" in name or ":" in name:
        raise ConfigError(f"registered model name {name!r} must be non-empty, without '/', '@' or ':'.")


def register(tracking_uri: str, model_uri: str, name: str, alias: str | None = None) -> int:
    """Register ``model_uri`` as a new version of ``name`` (tagged ``alias``); return the version."""
    import mlflow

    check_model_name(name)
    mlflow.set_tracking_uri(tracking_uri)
    registry = client(tracking_uri)
    try:  # check the source first, or a bad URI leaves an empty registered model behind
        mlflow.models.get_model_info(model_uri)
    except Exception as exc:
        raise TrackingError(f"cannot register {model_uri}: it does not resolve to a logged model "
                            f"({str(exc).strip().splitlines()[0]}).") from None
    try:
        version = mlflow.register_model(model_uri, name)
        if alias:
            registry.set_registered_model_alias(name, alias, version.version)
    except mlflow.exceptions.MlflowException as exc:
        raise TrackingError(f"cannot register {model_uri} as {name!r}: {exc.message}") from None
    return int(version.version)


# --- queries used by reports
# Read-only, through MlflowClient's public methods; every page of a search is read.
def list_experiments(uri: str) -> dict[str, str]:
    """Map name -> id of the active experiments in ``uri``; ``TrackingError`` when unreadable."""
    c, found, token = client(uri), {}, None
    try:
        while True:
            page = c.search_experiments(max_results=1000, page_token=token)
            found.update({e.name: e.experiment_id for e in page})
            token = page.token
            if not token:
                return found
    except Exception as exc:  # an unreachable server, a file that is not a store, ...
        raise TrackingError(f"tracking store {public(uri)!r} cannot be read: {exc}") from None


@dataclass(frozen=True)
class MetricPoint:
    """One logged value of a metric."""

    step: int
    value: float
    timestamp: int  # ms since the epoch


def metric_histories(uri: str, run_ids: list[str], keys: tuple[str, ...]
                     ) -> dict[str, dict[str, list[MetricPoint]]]:
    """``{run_id: {key: [MetricPoint, ...]}}``: every logged value of ``keys`` (one query per run and key)."""
    if not run_ids:  # no client: it would create a store that does not exist yet
        return {}
    c = client(uri)
    return {run_id: {key: [MetricPoint(m.step, m.value, m.timestamp) for m in c.get_metric_history(run_id, key)]
                     for key in keys} for run_id in run_ids}


def list_artifacts(uri: str, run_id: str, folder: str) -> list[str]:
    """Paths of the files directly in artifact ``folder`` of ``run_id`` (empty when it has none)."""
    try:
        return [f.path for f in client(uri).list_artifacts(run_id, folder) if not f.is_dir]
    except Exception:  # no artifact folder at all
        return []


def download_artifact(uri: str, run_id: str, path: str, folder: str | Path) -> Path:
    """Copy artifact ``path`` of ``run_id`` into ``folder``; return the local file."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(client(uri).download_artifacts(run_id, path, str(folder)))


# --- queries used by evaluate_run
def get_run(uri: str, run_id: str) -> StoredRun:
    """Run ``run_id``; ``TrackingError`` when ``uri`` has no such run."""
    try:
        return _stored(client(uri).get_run(run_id))
    except Exception:
        raise TrackingError(f"run {run_id} is not in tracking store {public(uri)!r}; pass the --tracking-uri it "
                            "was logged to.") from None


def read_json_artifact(uri: str, run_id: str, path: str) -> Any:
    """The parsed JSON artifact ``path`` of ``run_id``; ``TrackingError`` when it is missing."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return json.loads(download_artifact(uri, run_id, path, tmp).read_text())
    except Exception:
        raise TrackingError(f"run {run_id} has no readable {path} artifact.") from None
