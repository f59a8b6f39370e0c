"""``harness.generators.scoring.evaluate_run``: score a finished run's logged generator later, into the same run."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from test_metrics_inception import tiny_graph_def  # noqa: E402

from harness.errors import ConfigError, TrackingError  # noqa: E402
from harness.generators.scoring import _check_same_evaluation, evaluate_run  # noqa: E402
from harness.measure.backbones import inception  # noqa: E402

LATENT = 4


@pytest.fixture
def finished_run(tracking_uri, cifar10_root, tmp_path, monkeypatch):
    """A run logged the way `harness run` logs one: config, data params, epochs, the generator."""
    from harness.config import RunConfig
    from harness.data import load_dataset
    from harness.store import tracking

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    config = RunConfig(variant="animals_baseline", dataset="cifar10:horses", epochs=2, max_images=64,
                       tracking_uri=tracking_uri, eval_samples=20).resolved()
    dataset = load_dataset(config.dataset, image_size=32, max_images=64)
    logger = tracking.RunLogger.start(tracking_uri, config.experiment, run_name="tiny")
    logger.log_params(dataset.params())
    logger.log_json(config.to_dict(), "config.json")
    for epoch in (1, 2):
        logger.log_metrics({"epoch_seconds": 1.0}, step=epoch)
    keras.utils.set_random_seed(0)
    generator = keras.Sequential([keras.Input((LATENT,)), keras.layers.Dense(32 * 32 * 3, activation="tanh"),
                                  keras.layers.Reshape((32, 32, 3))])
    logger.log_generator(generator, ["tensorflow", "keras"])
    logger.end("FINISHED")
    return logger.run_id


def test_scores_are_logged_into_the_run_at_its_last_epoch(finished_run, tracking_uri, graph_file):
    from harness.store import tracking

    scores = evaluate_run(finished_run, tracking_uri=tracking_uri, backbone="inception",
                          inception_path=graph_file, log=lambda *_: None)
    assert scores["step"] == 2 and np.isfinite(scores["fid"])
    client = tracking.client(tracking_uri)
    run = client.get_run(finished_run)
    assert run.data.params["eval_backbone"] == "inception-2015-12-05"
    from harness.data import load_dataset

    held_out = load_dataset("cifar10:horses", split="test").count  # scored against the test split by default
    assert (run.data.params["eval_n_fake"], run.data.params["eval_n_real"]) == ("20", str(held_out))
    assert run.data.params["eval_reference"] == "test" and scores["fid_floor"] >= 0
    for key in ("fid", "kid", "kid_std", "is", "is_std", "feature_img_s"):
        (metric,) = client.get_metric_history(finished_run, key)
        assert metric.step == 2 and metric.value == pytest.approx(scores[key])

    with pytest.raises(TrackingError, match="run 0+ is not in tracking store"):
        evaluate_run("0" * 32, tracking_uri=tracking_uri)
    # A second evaluation with another sample count would make the run's values mean two things.
    with pytest.raises(ConfigError, match="eval_n_fake=20, not 30.*--eval-samples"):
        evaluate_run(finished_run, tracking_uri=tracking_uri, eval_samples=30, backbone="inception",
                     inception_path=graph_file, log=lambda *_: None)


def test_another_file_of_the_same_backbone_is_refused(finished_run, tracking_uri, graph_file, tmp_path):
    from harness.store import tracking

    evaluate_run(finished_run, tracking_uri=tracking_uri, backbone="inception", inception_path=graph_file,
                 log=lambda *_: None)
    # Same name and structure, other bytes (one more constant): another network as far as FIDs go.
    graph_def = tiny_graph_def()[0]
    extra = graph_def.node.add()
    extra.CopyFrom(next(n for n in graph_def.node if n.op == "Const"))
    extra.name = "unused_constant"
    other = tmp_path / "other" / inception.GRAPH_FILE
    other.parent.mkdir()
    other.write_bytes(graph_def.SerializeToString())
    with pytest.raises(ConfigError, match="eval_backbone_md5=.*--backbone/--inception"):
        evaluate_run(finished_run, tracking_uri=tracking_uri, backbone="inception", inception_path=str(other),
                     log=lambda *_: None)
    # A run scored before files were recorded cannot vouch for its earlier values.
    now = tracking.client(tracking_uri).get_run(finished_run).data.params
    legacy = {"eval_backbone": now["eval_backbone"], "eval_n_real": "64", "eval_n_fake": "20"}
    with pytest.raises(ConfigError, match="before backbone files were recorded"):
        _check_same_evaluation("legacy", legacy, now)
