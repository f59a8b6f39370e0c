"""Optuna studies over run settings: per-class searches, resumable, logged to MLflow.

Public API: ``StudySettings`` and ``run_study`` (studies.runner), ``best_run``
(what ``run --from-study`` trains), ``Objective`` (studies.objective), the
search space helpers (studies.space) and storage helpers (studies.storage).
Importing this package imports neither TensorFlow nor Optuna.
"""
