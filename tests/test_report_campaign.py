"""Campaign reports: only the campaign's runs, the per-class and pooled verdicts recomputed from runs.csv
with SciPy and statsmodels, failed cells making a comparison inconclusive, and the header's counts.

One module-scoped store of logged runs, written directly (no training): a real
plan (2 classes x 3 variants x 3 seeds) and its parent run as the campaign
command writes it, 16 finished cells, a failed one and a missing one, a run
replaced by a rerun, and a run of another campaign.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.campaign.plan import CELL_TAG, HASH_TAG, load_plan
from harness.campaign.run import PARENT_EXPERIMENT, open_parent
from harness.campaign.state import SUPERSEDED_TAG
from harness.cli import main
from harness.store import tracking
from reports.campaign import Campaign, scope, settings_md5
from reports.collect import PARENT_TAG, RunRecord
from variants import resolve

PLAN = """
name = "camp"
datasets = ["horses", "birds"]
seeds = [0, 1, 2]

[grid]
base = "animals_baseline"
axes = "one-at-a-time"
tokens = ["bn", "kernel4"]

[run]
epochs = 2
max_images = 128
eval_every = 2
eval_samples = 64
backbone = "cifar10_classifier"
"""
FAILED, MISSING = "birds/kernel4/s2", "horses/kernel4/s2"
EVAL = {"eval_backbone": "cifar10_classifier-v1", "eval_backbone_md5": "c" * 32,
        "eval_backbone_settings": "channels=16, epochs=6", "eval_backbone_test_acc": "0.8580",
        "eval_n_real": "64", "eval_n_fake": "64"}
# Final FIDs: the classes on different scales; BatchNorm about 10% better, kernel 4 about the same.
BASE = {"horses": 100.0, "birds": 300.0}
EFFECT = {"animals_baseline": 1.0, "bn": 0.9, "kernel4": 1.0}


def fid(dataset: str, variant: str, seed: int) -> float:
    noise = np.random.default_rng([len(dataset), len(variant), seed]).normal(0, 0.04)
    return BASE[dataset] * EFFECT[variant] * (1 + noise) + 3.0 * seed  # seed effect: pairing matters


def log_run(uri: str, cell, *, status: str = "FINISHED", value: float | None = None, tags: dict | None = None) -> str:
    """A run as training logs one: the cell's tags, the config and spec params, final metrics."""
    config = cell.config.resolved()
    spec = {k: v for k, v in resolve(cell.variant).to_params().items() if k != "name"}
    logger = tracking.RunLogger.create(uri, config.experiment, run_name=config.run_name,
                                       tags={**config.tags, **(tags or {})})
    logger.log_params({**spec, "variant": cell.variant, "dataset": cell.dataset, "data_name": cell.dataset,
                       "data_source": "cifar10", "data_count": "128", "seed": cell.seed, "epochs": config.epochs,
                       "batch_size": config.batch_size, "max_images": config.max_images, "width": config.width,
                       **EVAL})
    if status == "FINISHED":
        value = fid(cell.dataset, cell.variant, cell.seed) if value is None else value
        # d_loss: every trained epoch logs it, and a cell counts as trained only with it (store.schema).
        logger.log_metrics({"fid": value, "kid": value / 1000, "is": 1.5, "real_acc": 0.8, "fake_acc": 0.3,
                            "d_loss": 1.0}, step=config.epochs)
    logger.end(status, "d_loss became nan" if status == "FAILED" else None)
    return logger.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("campaign_report")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # artifacts go to ./mlruns
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        (folder / "plan.toml").write_text(PLAN)
        plan = load_plan(folder / "plan.toml", tracking_uri=uri, checkpoint_dir=str(folder / "ck"))
        tracking.ensure_store(uri)
        parent = open_parent(plan, uri)  # plan.toml and cells.json, as the campaign command logs them
        cells = {c.key: c for c in plan.cells}
        # Older runs first: the report reads newest first.
        superseded = log_run(uri, cells["horses/bn/s0"], value=999.0, tags={SUPERSEDED_TAG: "settings changed"})
        other_plan = load_plan(_write(folder / "other.toml", PLAN.replace('"camp"', '"other"')), tracking_uri=uri)
        other = log_run(uri, {c.key: c for c in other_plan.cells}["horses/bn/s1"], value=5.0)
        ids = {key: log_run(uri, cell, status="FAILED" if key == FAILED else "FINISHED")
               for key, cell in cells.items() if key != MISSING}
        tracking.RunLogger(uri, parent).end("FINISHED")
        out = folder / "report"
        code = main(["report", "--campaign", "camp", "--tracking-uri", uri, "--out", str(out),
                     "--format", "md,csv,html"])
    assert code == 0
    return {"uri": uri, "out": out, "ids": ids, "parent": parent, "superseded": superseded, "other": other,
            "folder": folder}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _fids(dataset: str, variant: str, seeds) -> np.ndarray:
    return np.array([fid(dataset, variant, s) for s in seeds])


def test_only_the_campaigns_runs_are_read(store):
    used = {i for row in _csv(store["out"] / "runs.csv") for i in [row["run_id"]]}
    finished = {i for key, i in store["ids"].items() if key != FAILED}
    assert used == finished  # not the superseded run, not the other campaign's, not the parent
    excluded = _csv(store["out"] / "excluded_runs.csv")
    assert [(r["run"], r["status"]) for r in excluded] == [(store["ids"][FAILED], "FAILED")]
    assert PARENT_EXPERIMENT == "campaigns"  # the parent is read from there, by its tag
    assert tracking.get_run(store["uri"], store["parent"]).tags[PARENT_TAG] == "true"


def test_seed_counts_in_the_variant_table(store):
    rows = {(r["dataset"], r["variant"]): r for r in _csv(store["out"] / "variants.csv")}
    assert {k: int(r["n"]) for k, r in rows.items()} == {
        ("horses", "animals_baseline"): 3, ("horses", "bn"): 3, ("horses", "kernel4"): 2,
        ("birds", "animals_baseline"): 3, ("birds", "bn"): 3, ("birds", "kernel4"): 2}
    horses_bn = rows[("horses", "bn")]
    assert float(horses_bn["fid"]) == pytest.approx(_fids("horses", "bn", range(3)).mean(), rel=1e-12)
    assert float(horses_bn["fid_std"]) == pytest.approx(_fids("horses", "bn", range(3)).std(ddof=1), rel=1e-9)


def _normalised(rows: list[dict[str, str]], dataset: str, variant: str, metric: str) -> np.ndarray:
    """From runs.csv alone: (variant - base) / mean(base) on ``dataset``, paired by seed, complete pairs."""
    value = {(r["variant"], int(r["seed"])): float(r[f"metric.{metric}"]) for r in rows if r["dataset"] == dataset}
    seeds = sorted(s for v, s in value if v == variant and ("animals_baseline", s) in value)
    base = np.array([value[("animals_baseline", s)] for s in seeds])
    return (np.array([value[(variant, s)] for s in seeds]) - base) / base.mean()


def test_verdict_rows_recompute_from_runs_csv_with_scipy_and_statsmodels(store):
    from statsmodels.stats.weightstats import DescrStatsW

    runs = _csv(store["out"] / "runs.csv")
    assert {"start_time", "metric.fid", "metric.kid", "param.seed", "param.epochs"} <= set(runs[0])
    rows = {(r["arm"], r["metric"], r["scope"]): r for r in _csv(store["out"] / "exploratory.csv")}
    for metric in ("kid", "fid"):
        per_class = {d: _normalised(runs, d, "bn", metric) for d in ("horses", "birds")}
        for dataset, d in per_class.items():
            row = rows[("bn", metric, dataset)]
            assert int(row["n"]) == int(row["expected"]) == 3
            assert float(row["change"]) == pytest.approx(100 * d.mean(), rel=1e-9)
            low, high = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
            assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx((100 * low, 100 * high), rel=1e-9)
            assert float(row["p"]) == pytest.approx(stats.ttest_1samp(d, 0).pvalue, rel=1e-9)
            assert float(row["p_equivalence"]) == pytest.approx(DescrStatsW(d).ttost_mean(-0.1, 0.1)[0], rel=1e-9)
        pooled = rows[("bn", metric, "2 classes pooled")]
        # Classes as blocks: the mean of the class means, its variance from within-class spread only,
        # Welch-Satterthwaite degrees of freedom (harness.stats.paired's stratified t, written out).
        d = list(per_class.values())
        estimate = np.mean([x.mean() for x in d])
        terms = np.array([x.var(ddof=1) / len(x) / len(d) ** 2 for x in d])
        df = terms.sum() ** 2 / sum(t ** 2 / (len(x) - 1) for t, x in zip(terms, d))
        p = 2 * stats.t.sf(abs(estimate) / np.sqrt(terms.sum()), df)
        assert float(pooled["change"]) == pytest.approx(100 * estimate)
        assert float(pooled["p"]) == pytest.approx(p, rel=1e-9)
        assert pooled["verdict"] == ("better" if p < 0.05 and estimate < 0 else "inconclusive")
    assert {r["verdict"] for r in rows.values()} <= {"better", "worse", "equivalent", "inconclusive"}


def test_an_arm_with_a_failed_or_missing_cell_is_inconclusive_without_numbers(store):
    rows = [r for r in _csv(store["out"] / "exploratory.csv") if r["arm"] == "kernel4"]
    assert rows and all(r["verdict"] == "inconclusive" and r["change"] == r["p"] == "" for r in rows)
    pooled = [r for r in rows if r["scope"] == "2 classes pooled"]
    assert all(r["reason"].startswith("2 of 6 pairs missing") and "seed 2" in r["reason"] for r in pooled)
    md = (store["out"] / "report.md").read_text()
    assert "Wilcoxon" not in md and "too few seeds" not in md and "no evidence" not in md


def test_header_states_plan_cells_and_limits(store):
    md = (store["out"] / "report.md").read_text()
    assert md.startswith("# Campaign camp: ")
    assert "Cells: 18 planned; 16 finished, 1 failed, 1 missing." in md
    assert "1 run(s) replaced by a rerun (tag campaign.superseded) were not read" in md
    assert ("2 dataset(s) (horses, birds) x 3 variant(s) (animals_baseline, bn, kernel4) x 3 seed(s) (0, 1, 2) "
            "= 18 cells") in md
    assert "trains 2 epoch(s) on at most 128 images of each class (128 used)" in md
    assert "64 generated images with backbone cifar10_classifier" in md
    assert "cifar10_classifier-v1 (file md5 cccccccc, test acc 85.8%), 64 real / 64 fake" in md
    assert "at or above the 80% floor" in md and store["parent"] in md
    assert "Cannot say how variants rank after longer training" in md
    assert "a per-class verdict rests on 3 pairs" in md and "The plan declared no [hypotheses]" in md
    assert "## Power" in md and "## Robust aggregates" in md and "(plots/profile_kid.png)" in md
    assert "Optuna studies" not in md  # a campaign report is about its runs
    assert "Declaration: unknown (the campaign was not started from a plan in a git repository" in md
    grid = {(r["dataset"], r["variant"]): r for r in _csv(store["out"] / "campaign_cells.csv")}
    assert (grid[("birds", "kernel4")]["s2"], grid[("horses", "kernel4")]["s2"]) == ("failed", "missing")
    assert [int(grid[k]["n"]) for k in sorted(grid)] == [3, 3, 2, 3, 3, 2]
    assert (store["out"] / "plots" / "fid_seeds.png").stat().st_size > 5000
    html = (store["out"] / "report.html").read_text()
    assert "<ul class='scope'>" in html and "Final FID per variant and class, seeds as points" in html


def test_an_unknown_campaign_names_the_ones_there(store, tmp_path, capsys):
    assert main(["report", "--campaign", "cmap", "--tracking-uri", store["uri"], "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown campaign 'cmap'" in err and "did you mean 'camp'" in err


def test_the_full_report_sets_the_parent_apart_and_lists_superseded_runs(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no optuna.db here
    out = tmp_path / "all"
    assert main(["report", "--tracking-uri", store["uri"], "--out", str(out), "--format", "md,csv"]) == 0
    excluded = {r["run"]: r["why"] for r in _csv(out / "excluded_runs.csv")}
    assert excluded[store["superseded"]] == "superseded in its campaign (settings changed)"
    assert store["parent"] not in excluded  # a plan, not a training run left out
    # Without --campaign, another campaign's run of the same setting and seed is an older rerun of it.
    assert excluded[store["other"]] == "superseded by a newer finished run of the same seed"
    assert "1 parent run(s) of campaigns" in (out / "report.md").read_text()


def _run(key: str, status: str = "FINISHED", md5: str = "", run_id: str = "r" * 32) -> RunRecord:
    dataset, variant, seed = key.split("/")
    return RunRecord(run_id=run_id, run_name=key, experiment=dataset, status=status, start_time=0, dataset=dataset,
                     variant=variant, seed=int(seed[1:]), axes={}, setting=(), eval_key=None, metrics={"d_loss": 1.0},
                     tags={CELL_TAG: key, HASH_TAG: md5})


def test_cell_states_follow_the_campaign_status_rules():
    entries = [{"cell": f"horses/bn/s{s}", "experiment": "horses", "dataset": "horses", "variant": "bn", "seed": s,
                "epochs": 2} for s in range(5)]
    md5 = [settings_md5(e) for e in entries]
    runs = [_run("horses/bn/s0", md5=md5[0]),
            _run("horses/bn/s1", md5="0" * 12),  # finished with settings the plan no longer has
            _run("horses/bn/s2", status="FAILED", md5=md5[2]), _run("horses/bn/s2", md5="0" * 12),
            _run("horses/bn/s3", status="RUNNING", md5=md5[3])]
    campaign = Campaign("c", runs=runs, cells=entries)
    assert list(campaign.states().values()) == ["finished", "changed", "changed", "running", "missing"]
    section = scope(campaign, [])
    assert "Cells: 5 planned; 1 finished, 2 changed, 1 running, 0 failed, 1 missing." in section.text
    assert "5 planned cell(s) did not finish" not in " ".join(section.bullets)
    assert "4 planned cell(s) did not finish" in " ".join(section.bullets)


def test_without_a_parent_run_the_plan_is_said_to_be_unknown():
    campaign = Campaign("c", runs=[_run("horses/bn/s0")], plan_error="no parent run of campaign 'c' was found")
    section = scope(campaign, [])
    assert "Plan: unknown (no parent run of campaign 'c' was found)" in section.text
    assert "Cells: unknown" in section.text and not section.tables
