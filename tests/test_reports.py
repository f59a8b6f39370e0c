"""Reports: tables equal the logged values, the ablation statistics match their formulas,
failed runs are listed and left out, all four formats and the plots are written.

One module-scoped store holds real short runs (2 variants x 2 classes x 2 seeds),
a failed run and an Optuna study; the report is built from it once through the CLI.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from reports.collect import RunRecord
from reports.tables import select, variant_tables

VARIANTS = ("animals_baseline", "bn")  # differ in the batchnorm axis only
DATASETS = ("horses", "cats")
SEEDS = (0, 1)
EVAL_KEYS = ("fid", "kid", "is", "real_acc", "fake_acc", "images_per_s")


# --- the store -------------------------------------------------------------------------------
def _train_store(folder: Path, uri: str) -> dict[tuple[str, str, int], str]:
    from harness import train
    from harness.config import RunConfig

    ids = {}
    for variant in VARIANTS:
        for dataset in DATASETS:
            for seed in SEEDS:
                config = RunConfig(
                    variant=variant, dataset=dataset, epochs=2, batch_size=32, max_images=128, width=0.125,
                    seed=seed, tracking_uri=uri, progress=False, checkpoint_dir=str(folder / "ck"),
                    eval_every=1, eval_samples=32,
                    backbone="cifar10_classifier")
                ids[(variant, dataset, seed)] = train.run(config, log=lambda *a: None).run_id
    return ids


def _failed_run(uri: str) -> str:
    from harness import tracking

    client = tracking.client(uri)
    experiment = tracking.experiment_id(uri, "horses")
    run = client.create_run(experiment, run_name="diverged", tags={"variant": "bn", "dataset": "horses"})
    client.set_tag(run.info.run_id, "failure_reason", "d_loss became nan at epoch 1")
    client.set_terminated(run.info.run_id, "FAILED")
    return run.info.run_id


def _study(storage: str) -> None:
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name="horses-bn", direction="minimize")
    for key, value in {"variant": "bn", "dataset": "horses", "objective": "fid",
                       "eval_backbone": "cifar10_classifier"}.items():
        study.set_user_attr(key, value)
    dist = {"g_lr": FloatDistribution(1e-5, 1e-2, log=True), "d_lr": FloatDistribution(1e-5, 1e-2, log=True)}
    for state, value, g_lr in ((TrialState.COMPLETE, 210.0, 1e-4), (TrialState.PRUNED, None, 1e-3),
                               (TrialState.COMPLETE, 190.5, 3e-4), (TrialState.FAIL, None, 1e-2),
                               (TrialState.COMPLETE, 200.0, 2e-4)):
        study.add_trial(create_trial(state=state, value=value, params={"g_lr": g_lr, "d_lr": 2e-4},
                                     distributions=dist))


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_backbone):
    """A tracking store of real short runs (scored with the tiny backbone), a failed run and a
    study; the report built from it through the CLI."""
    folder = tmp_path_factory.mktemp("report_store")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # artifacts go to ./mlruns
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        ids = _train_store(folder, uri)
        failed = _failed_run(uri)
        storage = f"sqlite:///{folder / 'optuna.db'}"
        _study(storage)
        out = folder / "report"
        code = main(["report", "--tracking-uri", uri, "--out", str(out), "--experiment", "horses",
                     "--experiment", "cats", "--format", "md,csv,tex,html", "--storage", storage])
    assert code == 0
    return {"uri": uri, "ids": ids, "failed": failed, "out": out, "storage": storage, "folder": folder}


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _final(client, run_id: str, key: str) -> float | None:
    history = client.get_metric_history(run_id, key)
    return max(history, key=lambda m: (m.step, m.timestamp)).value if history else None


# --- tables equal the logged values ----------------------------------------------------------
def test_variant_table_equals_logged_final_values(store):
    from harness import tracking

    client = tracking.client(store["uri"])
    rows = {(r["dataset"], r["variant"]): r for r in _csv(store["out"] / "variants.csv")}
    assert set(rows) == {(d, v) for d in DATASETS for v in VARIANTS}
    for (dataset, variant), row in rows.items():
        run_ids = [store["ids"][(variant, dataset, s)] for s in SEEDS]
        assert row["runs"].split(";") == run_ids  # the runs behind the numbers, by seed
        assert int(row["n"]) == 2 and row["epochs"] == "2"
        for key in EVAL_KEYS:
            values = [_final(client, run_id, key) for run_id in run_ids]
            assert float(row[key]) == pytest.approx(np.mean(values), rel=1e-12), key
            assert float(row[key + "_std"]) == pytest.approx(np.std(values, ddof=1), rel=1e-9), key


def test_ablation_pairs_by_seed_and_matches_the_t_formula(store):
    from scipy import stats

    from harness import tracking

    client = tracking.client(store["uri"])
    rows = _csv(store["out"] / "ablation.csv")
    assert {(r["dataset"], r["axis"], r["from"], r["to"]) for r in rows} == {
        (d, "batchnorm", "none", "both") for d in DATASETS}
    for row in rows:
        a = np.array([_final(client, store["ids"][("animals_baseline", row["dataset"], s)], "fid") for s in SEEDS])
        b = np.array([_final(client, store["ids"][("bn", row["dataset"], s)], "fid") for s in SEEDS])
        d = b - a
        n, mean, se = len(d), d.mean(), d.std(ddof=1) / math.sqrt(len(d))
        t = mean / se
        assert int(row["n"]) == 2
        assert float(row["diff"]) == pytest.approx(mean, rel=1e-12)
        assert float(row["ci_low"]) == pytest.approx(mean - stats.t.ppf(0.975, n - 1) * se, rel=1e-9)
        assert float(row["ci_high"]) == pytest.approx(mean + stats.t.ppf(0.975, n - 1) * se, rel=1e-9)
        assert float(row["t_p"]) == pytest.approx(2 * stats.t.sf(abs(t), n - 1), rel=1e-9)
        assert float(row["wilcoxon_p"]) == pytest.approx(0.5)  # exact, n = 2: both signs equal
    p = sorted(float(r["t_p"]) for r in rows)  # two rows: Holm multiplies the smaller p by 2
    assert sorted(float(r["holm_p"]) for r in rows) == pytest.approx([min(1, 2 * p[0]), max(min(1, 2 * p[0]), p[1])])


def test_failed_runs_are_listed_and_left_out(store):
    excluded = _csv(store["out"] / "excluded_runs.csv")
    assert [(r["run"], r["status"]) for r in excluded] == [(store["failed"], "FAILED")]
    assert "nan" in excluded[0]["why"]
    used = {i for r in _csv(store["out"] / "variants.csv") for i in r["runs"].split(";")}
    assert store["failed"] not in used and used == set(store["ids"].values())


def test_study_table_counts_trials_and_names_the_best(store):
    import optuna

    (row,) = _csv(store["out"] / "studies.csv")
    best = optuna.load_study(study_name="horses-bn", storage=store["storage"]).best_trial
    assert (row["dataset"], row["variant"], row["complete"], row["pruned"], row["failed"]) == (
        "horses", "bn", "3", "1", "1")
    assert float(row["best_value"]) == best.value == 190.5
    assert float(row["g_lr"]) == best.params["g_lr"] and int(row["best_trial"]) == best.number


def test_all_formats_and_plots_are_written(store):
    out = store["out"]
    for name in ("accuracy", "losses", "fid", "samples_horses", "samples_cats", "study_curves"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 5000, name
    md = (out / "report.md").read_text()
    for link in ("plots/accuracy.png", "plots/fid.png", "plots/samples_horses.png"):
        assert f"]({link})" in md
    assert store["ids"][("bn", "horses", 0)][:8] in md and "**" in md  # runs named, best marked
    tex = (out / "report.tex").read_text()
    assert all(rule in tex for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\usepackage{booktabs}"))
    assert r"animals\_baseline" in tex and "animals_baseline" not in tex.replace(r"animals\_baseline", "")
    html = (out / "report.html").read_text()
    assert html.count("src='data:image/png;base64,") == 6
    assert "src='http" not in html and "src='plots" not in html  # self-contained
    assert "class='num best'" in html


def test_html_page_renders_in_headless_chromium(store, tmp_path):
    import shutil
    import subprocess

    from PIL import Image

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is missing under CI; .ci/chromium.sh installs it")
        pytest.skip("chromium not installed (.ci/chromium.sh installs it)")
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
         (store["out"] / "report.html").resolve().as_uri()],
        check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2000, 1280)
    assert (pixels < 128).mean() > 0.005  # text and table rules, not a blank page
    assert len(np.unique(pixels)) > 50  # anti-aliased text and the inlined figures


# --- small pieces, no store ---------------------------------------------------------------------
def _record(run_id: str, variant: str, seed: int, metrics: dict, eval_key=("cifar10_classifier", "128", "64"),
            status: str = "FINISHED") -> RunRecord:
    return RunRecord(run_id=run_id, run_name=run_id, experiment="horses", status=status, start_time=0,
                     dataset="horses", variant=variant, seed=seed, axes={}, setting=(("epochs", "2"),),
                     eval_key=eval_key, metrics=metrics, params={"epochs": "2"})


def test_missing_values_stay_missing_and_other_sample_counts_are_not_compared(tmp_path):
    from reports import render

    runs = [_record("a" * 32, "bn", 0, {"fid": 100.0}), _record("b" * 32, "bn", 1, {"fid": 110.0}),
            _record("c" * 32, "nobn", 0, {"fid": 90.0}, eval_key=("cifar10_classifier", "128", "5000"))]
    tables = variant_tables(select(runs).included)
    assert len(tables) == 2  # 64 and 5000 generated samples are never side by side
    first = next(t for t in tables if "64 fake" in t.title)
    (row,) = first.rows
    assert row["fid"] == 105.0 and row["kid"] is None and row["kid_n"] == 0
    (written,) = _csv(render.write_csv(first, tmp_path / "t.csv"))
    assert written["kid"] == "" and written["fid"] == "105.0"
    assert "| — |" in render.markdown_table(first)
    assert first.best() == set()  # one row is not a comparison


def test_paired_test_against_hand_computed_values():
    from reports.ablation import paired_test

    result = paired_test([10.0, 12.0, 11.0, 13.0], [8.0, 11.0, 8.0, 12.0])  # d = -2, -1, -3, -1
    se = math.sqrt((0.0625 + 0.5625 + 1.5625 + 0.5625) / 3 / 4)  # mean d = -1.75
    t = -1.75 / se
    # Student's t with 3 degrees of freedom in closed form: 2 * (1 - F(|t|)).
    x = abs(t) / math.sqrt(3)
    p = 1 - 2 / math.pi * (x / (1 + x * x) + math.atan(x))
    assert result.mean == -1.75
    assert result.t_p == pytest.approx(p, rel=1e-9)
    assert result.ci_low == pytest.approx(-1.75 - 3.182446305284263 * se)  # t table, 97.5 %, 3 dof
    assert result.wilcoxon_p == pytest.approx(0.125)  # exact: all four signs negative, 2 / 2**4
    assert paired_test([1.0], [2.0]).ci_low is None  # one seed: no interval, no test


def test_holm_adjustment_by_hand():
    from reports.ablation import holm

    # sorted 0.01, 0.02, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.02), max(0.04, 1 * 0.04)
    assert holm([0.04, None, 0.01, 0.02]) == pytest.approx([0.04, None, 0.03, 0.04])


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> str:
    """A store with an experiment and no runs (creating one costs seconds: share it)."""
    from harness import tracking

    folder = tmp_path_factory.mktemp("empty_store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    tracking.ensure_store(uri)
    tracking.experiment_id(uri, "horses")
    return uri


def test_empty_store_says_so(empty_store, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no optuna.db here
    assert main(["report", "--tracking-uri", empty_store, "--out", str(tmp_path / "r")]) == 0
    assert "no runs or studies found" in capsys.readouterr().out
    assert "No runs and no studies found" in (tmp_path / "r" / "report.md").read_text()
    assert (tmp_path / "r" / "report.html").is_file() and not list((tmp_path / "r" / "plots").iterdir())


def test_bad_inputs_get_one_clear_message(empty_store, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--tracking-uri", f"sqlite:///{tmp_path / 'nope.db'}"]) == 2
    assert "no such file" in capsys.readouterr().err
    tracking_uri = empty_store
    assert main(["report", "--tracking-uri", tracking_uri, "--experiment", "horse"]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'horse'" in err and "did you mean 'horses'" in err
    assert main(["report", "--tracking-uri", tracking_uri, "--format", "md,pdf"]) == 2
    assert "md,csv,tex,html" in capsys.readouterr().err
