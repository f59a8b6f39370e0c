"""Campaigns: the whole comparison (variants x datasets x seeds) as one resumable command.

``plan`` reads and checks a TOML plan into cells; ``state`` says where each
cell stands (from MLflow); ``queue`` hands cells to workers through an Optuna
storage; ``run`` trains them; ``status`` prints the grid and the time left.
"""
