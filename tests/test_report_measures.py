"""Reports draw evaluation curves against generator steps and collect each arm's memorisation grid."""

from __future__ import annotations

import numpy as np
import pytest

from harness.cli import main
from harness.measure.memorisation import NEAREST_ARTIFACT
from harness.store import tracking
from reports import plots
from reports.collect import RunRecord

EVAL = {"eval_backbone": "cifar10_classifier-v1", "eval_backbone_md5": "c" * 32,
        "eval_backbone_test_acc": "0.8580", "eval_n_real": "64", "eval_n_fake": "64", "eval_reference": "test"}


def _record(run_id: str, steps_per_epoch: str | None) -> RunRecord:
    params = {} if steps_per_epoch is None else {"steps_per_epoch": steps_per_epoch}
    return RunRecord(run_id, run_id, "horses", "FINISHED", 0, "horses", "bn", 0, {}, (), None, {}, params=params)


def test_a_band_is_drawn_against_generator_steps():
    histories = {"a": {"kid": [(1, 0.4), (2, 0.2)]}, "b": {"kid": [(1, 0.6), (2, 0.4)]}}
    runs = [_record("a", "4"), _record("b", "4")]
    steps, mean, low, high = plots.seed_band(runs, histories, "kid")
    assert steps == [1, 2] and (low, high) == ([0.4, 0.2], [0.6, 0.4])
    steps, mean, low, high = plots.seed_band(runs, histories, "kid", g_steps=True)
    assert steps == [4, 8] and mean == pytest.approx([0.5, 0.3])  # epoch x steps_per_epoch
    assert plots.steps_per_epoch(_record("c", None)) is None


def test_the_report_draws_curves_and_shows_one_memorisation_grid_per_arm(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)  # artifacts go to ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.ensure_store(uri)
    grid = tmp_path / "final.png"
    for variant, colour in (("animals_baseline", 40), ("bn", 200)):
        Image.fromarray(np.full((20, 30, 3), colour, np.uint8)).save(grid)
        for seed in (0, 1):
            logger = tracking.RunLogger.create(uri, "horses", run_name=f"{variant}-s{seed}",
                                               tags={"variant": variant, "dataset": "horses"})
            logger.log_params({"variant": variant, "dataset": "horses", "seed": seed, "epochs": 2,
                               "steps_per_epoch": 4, **EVAL})
            for epoch in (1, 2):
                logger.log_metrics({"kid": 0.5 / epoch + seed / 100, "precision": 0.3 * epoch, "d_loss": 1.0,
                                    **({"fid": 80.0 + seed} if epoch == 2 else {})}, step=epoch)
            if seed == 1:  # only the second seed logged a grid: the report finds it
                logger.log_file(str(grid), "nearest")
            logger.end("FINISHED")
    out = tmp_path / "report"
    assert main(["report", "--tracking-uri", uri, "--out", str(out), "--format", "md"]) == 0
    text = (out / "report.md").read_text()
    assert "Memorisation check: animals_baseline" in text and "Memorisation check: bn" in text
    for variant, colour in (("animals_baseline", 40), ("bn", 200)):
        assert np.asarray(Image.open(out / "plots" / f"nearest-{variant.replace('_', '-')}.png"))[0, 0, 0] == colour
    assert (out / "plots" / "kid.png").is_file()
    assert NEAREST_ARTIFACT == "nearest/final.png"
