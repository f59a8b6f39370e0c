"""Where results are kept: the only package that imports MLflow.

  tracking         the MLflow adapter: runs, params, metrics, artifacts, queries
  sqlite           an SQLite store as a file: checked without writing, created once
  urls             store and storage URLs as they may be shown (no passwords)
  generator_model  the generator as an MLflow pyfunc model (logged from code)
  model_server     MLflow's scoring app on a logged generator, behind a request check
"""
