"""`export`: a logged generator written as .h5, .keras or a SavedModel loads back and draws the
same images for the same noise; a bad destination fails before anything is written."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from harness import cli
from harness.errors import ConfigError
from harness.generators import files as external
from harness.generators.export import export_generator, format_for
from harness.store import tracking
from variants import resolve
from variants.builders import build_generator


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """(tracking URI, run id, the generator) of one FINISHED run with a tiny generator."""
    folder = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # ./mlruns lands here
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        keras.utils.set_random_seed(0)
        generator = build_generator(resolve("animals_baseline").scaled(0.05))
        logger = tracking.RunLogger.start(uri, "horses")
        logger.log_generator(generator, ["numpy"])
        logger.end("FINISHED")
        yield uri, logger.run_id, generator


def noise() -> np.ndarray:
    return np.random.default_rng(3).standard_normal((4, 100)).astype(np.float32)


@pytest.mark.parametrize("fmt, name", [("h5", "g.h5"), ("keras", "g.keras"), ("savedmodel", "g_savedmodel")])
def test_export_round_trips_give_identical_images(logged, tmp_path, capsys, fmt, name):
    uri, run_id, generator = logged
    out = tmp_path / "exports" / name
    assert cli.main(["export", "--run-id", run_id, "--format", fmt, "--out", str(out),
                     "--tracking-uri", uri]) == 0, capsys.readouterr().err
    expected = generator(noise(), training=False).numpy()
    if fmt == "savedmodel":
        import tensorflow as tf

        restored = tf.saved_model.load(str(out))  # held: its variables die with it
        images = restored.serve(noise()).numpy()
    else:
        images = external.load(out).model(noise()).numpy()  # as `--generator` reads it
    np.testing.assert_array_equal(images, expected)
    assert [p.name for p in out.parent.iterdir()] == [name]  # no temporary left behind


def test_the_format_follows_the_suffix_and_must_agree_with_it(tmp_path):
    assert format_for(tmp_path / "g.h5") == "h5" and format_for(tmp_path / "g.keras") == "keras"
    with pytest.raises(ConfigError, match="say which format"):
        format_for(tmp_path / "g.bin")
    with pytest.raises(ConfigError, match="only under a name ending in .h5"):
        format_for(tmp_path / "g.keras", "h5")
    with pytest.raises(ConfigError, match="a SavedModel is a folder"):
        format_for(tmp_path / "g.keras", "savedmodel")


def test_an_existing_destination_is_never_replaced(logged, tmp_path, capsys):
    uri, run_id, generator = logged
    out = tmp_path / "g.keras"
    out.write_text("keep me")
    assert cli.main(["export", "--run-id", run_id, "--out", str(out), "--tracking-uri", uri]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "keep me"
    with pytest.raises(ConfigError, match="already exists"):
        export_generator(generator, tmp_path, "savedmodel")


def test_export_of_an_unknown_run_says_so(logged, tmp_path, capsys):
    uri, _, _ = logged
    assert cli.main(["export", "--run-id", "0" * 32, "--out", str(tmp_path / "g.h5"), "--tracking-uri", uri]) == 2
    assert "no such run" in capsys.readouterr().err
