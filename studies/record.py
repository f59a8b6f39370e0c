"""A study in MLflow: one parent run per study, holding the best trial and Optuna's plots.

The parent run is created once, before any worker starts, and its id is kept
in the study's user attrs so that resuming (from any machine) reuses it. It
ends FINISHED after each ``study`` command, and goes back to RUNNING when the
study is resumed.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

from harness.store import schema, tracking

# Optuna and matplotlib are imported inside functions: the CLI imports this module
# (through studies.runner), and `--help`, `variants` and `datasets` must not load them.

PARENT_ATTR = "mlflow_parent_run_id"


def open_parent(study, uri: str, experiment: str, tags: dict[str, str]) -> str:
    """The id of ``study``'s parent run in ``experiment``, created on first use (and again when
    the tracking store was replaced)."""
    run_id = schema.open_parent(uri, experiment, f"study-{study.study_name}",
                                {schema.STUDY_NAME_TAG: study.study_name, schema.STUDY_PARENT_TAG: "true", **tags},
                                run_id=study.user_attrs.get(PARENT_ATTR), search=False)
    study.set_user_attr(PARENT_ATTR, run_id)
    return run_id


def close_parent(study, uri: str, run_id: str, metric: str, status: str = "FINISHED") -> dict[str, Any]:
    """Write the study's outcome to the parent run and end it with ``status``.

    Logs trial counts by state, the best value (metric ``best_<metric>``) and the
    best params (tags ``best.<name>``, since params cannot change when a resumed
    study finds a better trial), the study's attributes, and the optimisation
    history, parameter importance and parallel coordinate plots as PNGs under
    ``optuna/``. Returns the summary it logged.
    """
    from optuna.trial import TrialState

    logger = tracking.RunLogger(uri, run_id)
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    summary: dict[str, Any] = {"trials": len(trials), **counts}
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    tags = {f"optuna.{k}": str(v) for k, v in study.user_attrs.items() if k != PARENT_ATTR}
    if done:
        best = study.best_trial
        summary.update(best_trial=best.number, best_value=best.value, best_params=best.params)
        tags.update({f"best.{k}": str(v) for k, v in best.params.items()},
                    best_trial=str(best.number), best_run_id=str(best.user_attrs.get("mlflow_run_id", "")))
        logger.log_metrics({f"best_{metric}": best.value}, step=len(trials))
    logger.log_metrics({f"trials_{k}": float(v) for k, v in summary.items()
                        if k in ("trials", *counts)}, step=len(trials))
    logger.set_tags(tags)
    logger.log_json(summary, "optuna/summary.json")
    for name in _log_plots(study, logger):
        summary.setdefault("plots", []).append(name)
    logger.end(status)
    return summary


def end_runs(uri: str, experiment: str, study_name: str, numbers: list[int], status: str) -> None:
    """End the still-RUNNING child runs of trials ``numbers`` with ``status``."""
    for number in numbers:
        for run in tracking.find_runs(uri, experiment, status="RUNNING", tags={
                "optuna.study_name": study_name, "optuna.trial_number": str(number)}):
            logger = tracking.RunLogger(uri, run.run_id)
            logger.set_tags({"optuna.trial_state": "FAIL"})
            logger.end(status)


def _log_plots(study, logger) -> list[str]:
    """Save Optuna's matplotlib plots that the study has enough trials for."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    plots = {"optimization_history": ovm.plot_optimization_history}
    if len(complete) >= 2 and len({k for t in complete for k in t.params}) >= 1:
        plots.update(param_importances=ovm.plot_param_importances,
                     parallel_coordinate=ovm.plot_parallel_coordinate)
    logged = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the matplotlib backend is marked experimental
        for name, plot in plots.items():
            try:
                ax = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError):
                # e.g. importances when every completed trial has the same value
                continue
            figure = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            path = Path(tmp) / f"{name}.png"
            figure.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(figure)
            logger.log_file(path, "optuna")
            logged.append(name)
    return logged
