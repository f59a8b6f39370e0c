"""Reports: tables equal the logged values, the ablation statistics match their formulas,
failed runs are listed and left out, all four formats and the plots are written.

One module-scoped store holds real short runs (2 variants x 2 classes x 2 seeds),
a failed run and an Optuna study; the report is built from it once through the CLI.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import use_tiny_cifar10

from harness.cli import main
from harness.measure.provenance import eval_key
from reports.collect import RunRecord
from reports.tables import Column, Table, select, variant_tables
from variants.spec import AXES, VariantSpec

VARIANTS = ("animals_baseline", "bn")  # differ in the batchnorm axis only
DATASETS = ("horses", "cats")
SEEDS = (0, 1)
EVAL_KEYS = ("fid", "kid", "is", "real_acc", "fake_acc", "images_per_s")


# --- the store -------------------------------------------------------------------------------
def _train_store(folder: Path, uri: str) -> dict[tuple[str, str, int], str]:
    from harness.config import RunConfig
    from harness.train import run as train

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
    from harness.store import tracking

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
def store(tmp_path_factory, tiny_backbone, request):
    """A tracking store of real short runs (scored with the tiny backbone), a failed run and a
    study; the report built from it through the CLI. Without CIFAR-10 the runs train on the
    tiny stand-in: the report reads what was logged, whatever the images."""
    folder = tmp_path_factory.mktemp("report_store")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # artifacts go to ./mlruns
        if not (Path(os.environ["HARNESS_DATA_DIR"]) / "cifar-10-batches-py").is_dir():
            use_tiny_cifar10(mp, request.getfixturevalue("_tiny_cifar10"))
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
    from harness.store import tracking

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

    from harness.store import tracking

    client = tracking.client(store["uri"])
    rows = _csv(store["out"] / "ablation.csv")
    assert {(r["dataset"], r["axis"], r["from"], r["to"]) for r in rows} == {
        (d, "batchnorm", "none", "both") for d in DATASETS}
    for row in rows:
        a = np.array([_final(client, store["ids"][("animals_baseline", row["dataset"], s)], "fid") for s in SEEDS])
        b = np.array([_final(client, store["ids"][("bn", row["dataset"], s)], "fid") for s in SEEDS])
        d = (b - a) / a.mean()  # a fraction of the 'from' variant's mean
        n, mean, se = len(d), d.mean(), d.std(ddof=1) / math.sqrt(len(d))
        t = mean / se
        assert int(row["n"]) == 2
        assert float(row["change"]) == pytest.approx(100 * mean, rel=1e-12)
        assert float(row["ci_low"]) == pytest.approx(100 * (mean - stats.t.ppf(0.975, n - 1) * se), rel=1e-9)
        assert float(row["ci_high"]) == pytest.approx(100 * (mean + stats.t.ppf(0.975, n - 1) * se), rel=1e-9)
        assert float(row["p"]) == pytest.approx(2 * stats.t.sf(abs(t), n - 1), rel=1e-9)
        # Two pairs, one degree of freedom: a verdict in the four words, from the tests alone.
        assert row["verdict"] in ("better", "worse", "equivalent", "inconclusive")
        holm = float(row["holm_p"])
        if holm >= 0.05 and float(row["tost_p"]) >= 0.05:
            assert row["verdict"] == "inconclusive"


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
    for name in ("accuracy", "losses", "fid", "fid_seeds", "samples_horses", "samples_cats", "study_curves"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 5000, name
    md = (out / "report.md").read_text()
    for link in ("plots/accuracy.png", "plots/fid.png", "plots/samples_horses.png"):
        assert f"]({link})" in md
    assert store["ids"][("bn", "horses", 0)][:8] in md  # runs named
    tex = (out / "report.tex").read_text()
    assert all(rule in tex for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\usepackage{booktabs}"))
    assert r"animals\_baseline" in tex and "animals_baseline" not in tex.replace(r"animals\_baseline", "")
    html = (out / "report.html").read_text()
    linked = re.findall(r"\]\((plots/[^)]+\.png)\)", md)  # every figure of the Markdown report...
    assert len(linked) >= 7 and html.count("src='data:image/png;base64,") == len(linked)  # ...embedded in the page
    assert "src='http" not in html and "src='plots" not in html  # self-contained
    # Each heading once: a section with one table is not titled twice.
    for heading in ("Runs behind the numbers", "Runs left out of the aggregates", "How FID/KID/IS were computed"):
        assert html.count(f">{heading}</h") == 1 and md.count(f" {heading}\n") == 1, heading
    # The tiny test backbone is far below the floor: its tables and FID plot say so.
    assert html.count("<p class='warning'><strong>Warning:</strong> The offline backbone") >= 3
    assert "> **Warning:**" in md and r"\textbf{Warning:}" in tex


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
def _record(run_id: str, variant: str, seed: int, metrics: dict, n_fake: str = "64", md5: str = "a" * 32,
            accuracy: str = "0.8580", status: str = "FINISHED", axes: dict | None = None,
            experiment: str = "horses", tags: dict | None = None) -> RunRecord:
    params = {"epochs": "2", "eval_backbone": "cifar10_classifier-v1", "eval_backbone_md5": md5,
              "eval_backbone_test_acc": accuracy, "eval_n_real": "128", "eval_n_fake": n_fake}
    return RunRecord(run_id=run_id, run_name=run_id, experiment=experiment, status=status, start_time=0,
                     dataset="horses", variant=variant, seed=seed, axes=axes or {}, setting=(("epochs", "2"),),
                     eval_key=eval_key(params), metrics=metrics, params=params, tags=tags or {})


def test_missing_values_stay_missing_and_other_sample_counts_are_not_compared(tmp_path):
    from reports import render

    runs = [_record("a" * 32, "bn", 0, {"fid": 100.0}), _record("b" * 32, "bn", 1, {"fid": 110.0}),
            _record("c" * 32, "nobn", 0, {"fid": 90.0}, n_fake="5000")]
    tables = variant_tables(select(runs).included)
    assert len(tables) == 2  # 64 and 5000 generated samples are never side by side
    first = next(t for t in tables if "64 fake" in t.title)
    (row,) = first.rows
    assert row["fid"] == 105.0 and row["kid"] is None and row["kid_n"] == 0
    (written,) = _csv(render.write_csv(first, tmp_path / "t.csv"))
    assert written["kid"] == "" and written["fid"] == "105.0"
    assert "| — |" in render.markdown_table(first)
    assert first.best() == set()  # one row is not a comparison


def test_the_ablation_refuses_rows_with_a_seed_one_variant_lacks_or_no_direction():
    from reports.ablation import ablation_table

    runs = [_record(f"{v}{s}" * 16, v, s, {"fid": 50.0 + s + (v == "b") * (1 + 0.1 * s), "is": 2.0 + s},
                    axes=_axes(batchnorm=b)) for v, b in (("a", "none"), ("b", "both")) for s in (0, 1, 2)]
    full = ablation_table(runs)
    assert [r["verdict"] for r in full.rows] == ["worse"]  # about +1 FID on every seed
    lacking = ablation_table(runs[:-1])  # b's seed 2 is missing
    (row,) = lacking.rows
    assert row["verdict"] == "inconclusive" and row["change"] is None and "seed 2" in row["reason"]
    (is_row,) = ablation_table(runs, "is").rows
    assert is_row["verdict"] == "inconclusive" and "no direction" in is_row["reason"]


def test_a_float_column_shares_one_format():
    from reports.render import column_texts

    table = Table("t", "t", [Column("x", "x", "float"), Column("lr", "lr", "float")],
                  rows=[{"x": 37.36, "lr": 1e-4}, {"x": 0.01921, "lr": 3e-2}, {"x": -0.169, "lr": None}])
    assert column_texts(table) == [["37.36", "1.00e-04"], ["0.02", "3.00e-02"], ["-0.17", "—"]]
    # A column rounded to a spread in its row (the ablation's CI half-width), as a mean to its std.
    spread = Table("t", "t", [Column("diff", "diff", "float", round_to="half")],
                   rows=[{"diff": 0.01921, "half": 0.19}, {"diff": -0.08802, "half": 1.89}, {"diff": 3.14159}])
    assert column_texts(spread) == [["0.02"], ["-0.1"], ["3.142"]]


def _best(rows: list[dict]) -> set:
    table = Table("t", "t", [Column("dataset", "d"), Column("fid", "FID", "mean_std", "min"),
                             Column("is", "IS", "mean_std", "max")], rows=rows, group="dataset")
    return table.best()


def test_a_best_cell_is_marked_only_when_clearly_better():
    row = lambda fid, fid_std, is_, is_std: {"dataset": "h", "fid": fid, "fid_std": fid_std, "is": is_,
                                              "is_std": is_std}
    # FID 100 ± 5 vs 120 ± 5: intervals apart, marked; IS 1 ± 5e-5 vs 1.00001 ± 5e-5: inside the spread.
    assert _best([row(100, 5, 1.0, 5e-5), row(120, 5, 1.00001, 5e-5)]) == {(0, "fid")}
    # Overlapping intervals (100 ± 15 vs 120 ± 6): no winner.
    assert _best([row(100, 15, 2, 0.1), row(120, 6, 3, 0.1)]) == {(1, "is")}
    # Apart by their stds but equal to 1e-7: rounding noise of a degenerate backbone, no winner.
    assert _best([row(100, 5, 1.0000001, 1e-9), row(120, 5, 1.0, 1e-9)]) == {(0, "fid")}
    # A row with one seed has no spread: the group is not marked.
    assert _best([row(100, None, 2, 0.1), row(120, 5, 3, 0.1)]) == {(1, "is")}
    # Clear of the last row is not enough: the runner-up (101.5 ± 1) overlaps 100 ± 1.
    assert _best([row(100, 1, 2, 0.1), row(104, 1, 3, 0.1), row(101.5, 1, 1, 0.1)]) == {(1, "is")}


def _axes(**changed) -> dict[str, str]:
    """Every axis as logged: the spec's defaults, with ``changed`` ones."""
    defaults = {f.name: f.default for f in dataclasses.fields(VariantSpec) if f.name in AXES}
    return {axis: str(changed.get(axis, defaults[axis])) for axis in AXES}


def test_values_of_different_backbone_files_are_never_side_by_side(tmp_path):
    from reports import render
    from reports.ablation import ablation_table

    full = [_record(f"{v}{s}" * 16, v, s, {"fid": 50.0 + s}, axes=_axes(batchnorm=b))
            for v, b in (("a", "none"), ("b", "both")) for s in (0, 1)]
    quick = [_record(f"q{v}{s}" * 10, v, s, {"fid": 900.0 + s}, md5="b" * 32, accuracy="0.3612",
                     axes=_axes(batchnorm=b)) for v, b in (("a", "none"), ("b", "both")) for s in (0, 1)]
    tables = variant_tables(select(full + quick).included)
    assert len(tables) == 2  # one name, two files: two tables
    by_md5 = {t.title.split("md5 ")[1][:8]: t for t in tables}
    assert {r["fid"] for r in by_md5["aaaaaaaa"].rows} == {50.5}
    assert {r["fid"] for r in by_md5["bbbbbbbb"].rows} == {900.5}
    assert by_md5["aaaaaaaa"].warning == ""
    assert "36.1% CIFAR-10 test accuracy, below the 80% floor" in by_md5["bbbbbbbb"].warning
    assert "<p class='warning'><strong>Warning:</strong>" in render.html_table(by_md5["bbbbbbbb"])
    ablation = ablation_table(full + quick)
    assert sorted((r["a"], r["b"]) for r in ablation.rows) == [(50.5, 50.5), (900.5, 900.5)]
    assert "below the 80% floor" in ablation.warning


def test_an_empty_ablation_says_which_pairs_would_give_rows():
    from reports.ablation import ablation_table

    two_axes = [_record("a" * 32, "animals_baseline", 0, {"fid": 1.0}, axes=_axes()),
                _record("b" * 32, "bn_kernel4", 0, {"fid": 2.0}, axes=_axes(batchnorm="both", kernel=4))]
    table = ablation_table(two_axes)
    assert not table.rows and "differ in exactly one axis" in table.empty
    assert "animals_baseline and bn_kernel4 differ in 2 axes (batchnorm, kernel)" in table.empty
    no_common_seed = [_record("a" * 32, "animals_baseline", 0, {"fid": 1.0}, axes=_axes()),
                      _record("b" * 32, "bn", 1, {"fid": 2.0}, axes=_axes(batchnorm="both"))]
    assert "animals_baseline (seeds 0) and bn (seeds 1) have no seed in common" in ablation_table(no_common_seed).empty
    assert "only bn" in ablation_table(no_common_seed[1:]).empty
    assert "train with --eval-every" in ablation_table([_record("c" * 32, "bn", 0, {})]).empty


def test_the_backbone_training_run_is_not_a_run_left_out():
    from reports.tables import excluded_table

    backbone = RunRecord(run_id="f" * 32, run_name="cifar10_classifier-v1", experiment="backbones", status="FINISHED",
                         start_time=0, dataset=None, variant=None, seed=0, axes={}, setting=(), eval_key=None,
                         metrics={}, tags={"backbone": "cifar10_classifier-v1"})
    sel = select([backbone, _record("a" * 32, "bn", 0, {"fid": 1.0})])
    assert sel.backbones == [backbone] and not sel.excluded and len(sel.included) == 1
    assert "None: every training run read finished" in excluded_table(sel.excluded).empty


def test_reports_query_mlflow_only_through_the_tracking_adapter():
    root = Path(__file__).resolve().parent.parent / "reports"
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "_tracking_client" not in text and "import mlflow" not in text and "from mlflow" not in text, path
        assert "filter_string" not in text and "search_runs" not in text, path  # tracking.find_runs quotes


def test_plots_fit_the_page_and_tell_real_from_fake_by_colour(store):
    from PIL import Image

    from reports.plots import COLOURS, WIDTH_IN

    for name in ("accuracy", "losses", "fid"):
        with Image.open(store["out"] / "plots" / f"{name}.png") as image:
            assert 600 < image.width <= 1200, name  # the HTML column is 1200 px: shown unscaled
            pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
        for colour in COLOURS[:2]:  # real and fake (or the two variants): two distinct hues drawn
            rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
            assert (np.abs(pixels - rgb).sum(1) < 30).sum() > 50, (name, colour)
    assert WIDTH_IN * 100 <= 1200
