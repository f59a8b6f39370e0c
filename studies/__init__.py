"""Optuna studies over run settings: per-class searches, resumable, logged to MLflow.

Public API: ``StudySettings`` (studies.settings: a run config plus the study's
own settings), ``run_study`` (studies.runner), ``study_best_config`` (studies.best:
the run config ``run --from-study`` trains), ``Objective`` (studies.objective),
the search space (studies.space) and storages (studies.storage).
Importing this package imports neither TensorFlow nor Optuna.
"""
