"""The checkpoint reader against checkpoints that lie: every malformed newest file is named
and the previous one restored, a refused file leaves the model untouched, and damaged bytes
never raise. (Resuming from such files end to end: test_reliability_hostile.py.)"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.train import checkpoints


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- checkpoints that lie: a sweep over the reader -----------------------------------------
@pytest.fixture(scope="module")
def gan():
    from harness.train.gan import GAN
    from variants import resolve

    model = GAN(resolve("animals_baseline").scaled(0.125))
    model.compile()
    return model


@pytest.fixture(scope="module")
def good_checkpoint(gan, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    return checkpoints.save(folder, 2, gan, {"run_id": "r1", "config": {"seed": 0}, "metrics": {"g_loss": 1.0}},
                            arrays={"fixed_noise": np.ones((4, 8), np.float32)})


def _with(good: Path, target: Path, *, drop=(), arrays=None, meta=None, raw_meta=None) -> None:
    import json

    with np.load(good) as data:
        state = {k: data[k] for k in data.files if k not in drop}
    state.update(arrays or {})
    if meta is not None:
        state["meta"] = np.frombuffer(json.dumps({**json.loads(state["meta"].tobytes()), **meta}).encode(), np.uint8)
    if raw_meta is not None:
        state["meta"] = raw_meta
    np.savez(target, **state)


def _object_array() -> np.ndarray:
    return np.array([{"a": 1}], dtype=object)


# name -> (how to make epoch-0002.npz from a good one, words the warning must hold)
MALFORMED = {
    "truncated": (lambda good, t: t.write_bytes(good.read_bytes()[: good.stat().st_size // 3]), "cut short"),
    "empty file": (lambda good, t: t.write_bytes(b""), "not a complete .npz"),
    "non-npz bytes": (lambda good, t: t.write_bytes(os.urandom(5000)), "not a complete .npz"),
    "an .npy, not an .npz": (lambda good, t: np.save(open(t, "wb"), np.zeros(3)), "not a complete .npz"),
    "no metadata": (lambda good, t: _with(good, t, drop=("meta",)), "no 'meta' array"),
    "metadata not JSON": (lambda good, t: _with(good, t, raw_meta=np.frombuffer(b"\xff{", np.uint8)), "not valid JSON"),
    "metadata a JSON list": (lambda good, t: _with(good, t, raw_meta=np.frombuffer(b"[2]", np.uint8)),
                             "not a JSON object"),
    "metadata as floats": (lambda good, t: _with(good, t, raw_meta=np.zeros(4)), "not JSON bytes"),
    "no epoch": (lambda good, t: _with(good, t, meta={"epoch": None}), "no valid epoch"),
    "epoch true": (lambda good, t: _with(good, t, meta={"epoch": True}), "no valid epoch"),
    "epoch negative": (lambda good, t: _with(good, t, meta={"epoch": -2}), "no valid epoch"),
    "epoch a string": (lambda good, t: _with(good, t, meta={"epoch": "2"}), "no valid epoch"),
    "name/metadata mismatch": (lambda good, t: _with(good, t, meta={"epoch": 3}),
                               "name says epoch 2 but its metadata says epoch 3"),
    "no config": (lambda good, t: _with(good, t, raw_meta=np.frombuffer(b'{"epoch": 2}', np.uint8)),
                  "lacks 'config'"),
    "config a string": (lambda good, t: _with(good, t, meta={"config": "x"}), "'config' is a str"),
    "metrics a list": (lambda good, t: _with(good, t, meta={"metrics": [1]}), "'metrics' is a list"),
    "another run's": (lambda good, t: _with(good, t, meta={"run_id": "r2"}), "belongs to run 'r2'"),
    "missing fixed_noise": (lambda good, t: _with(good, t, drop=("extra/fixed_noise",)), "'fixed_noise'"),
    "missing variable": (lambda good, t: _with(good, t, drop=("generator/0",)), "lacks generator/0"),
    "unknown variable": (lambda good, t: _with(good, t, arrays={"generator/999": np.zeros(1)}),
                         "holds generator/999"),
    "wrong shape": (lambda good, t: _with(good, t, arrays={"generator/0": np.zeros((3, 3), np.float32)}),
                    "generator/0 has shape (3, 3)"),
    "wrong dtype": (lambda good, t: _with(good, t, arrays={
        "generator/0": np.load(good)["generator/0"].astype(np.float64)}), "generator/0 is float64"),
    "NaN weights": (lambda good, t: _with(good, t, arrays={
        "generator/0": np.full_like(np.load(good)["generator/0"], np.nan)}), "holds NaN or inf"),
    "pickled metadata": (lambda good, t: _with(good, t, raw_meta=_object_array()), "pickled object array"),
    "pickled weights": (lambda good, t: _with(good, t, arrays={"generator/0": _object_array()}),
                        "pickled object array"),
    "pickled noise": (lambda good, t: _with(good, t, arrays={"extra/fixed_noise": _object_array()}),
                      "pickled object array"),
    "noise of strings": (lambda good, t: _with(good, t, arrays={"extra/fixed_noise": np.array(["a", "b"])}),
                         "not an array of finite numbers"),
    "oversized metadata": (lambda good, t: _with(good, t, meta={"pad": "x" * (checkpoints.MAX_META_BYTES + 1)}),
                           "more than the"),
    "a folder": (lambda good, t: t.mkdir(), "not a regular file"),
    "a FIFO": (lambda good, t: os.mkfifo(t), "not a regular file"),
    "a link loop": (lambda good, t: t.symlink_to(t.name), "unreadable"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_newest_checkpoint_is_named_and_the_previous_one_restored(case, gan, good_checkpoint, tmp_path):
    make, words = MALFORMED[case]
    folder = tmp_path / "r1"
    folder.mkdir()
    _with(good_checkpoint, folder / "epoch-0001.npz", meta={"epoch": 1})
    bad = folder / "epoch-0002.npz"
    make(good_checkpoint, bad)
    before = _digest(bad) if bad.is_file() and not bad.is_symlink() else None
    warnings: list[str] = []
    meta = checkpoints.latest_valid(folder, gan, warn=warnings.append, run_id="r1")
    assert meta is not None and meta["epoch"] == 1 and meta["path"].endswith("epoch-0001.npz")
    assert len(warnings) == 1 and str(bad) in warnings[0] and "trying the previous one" in warnings[0]
    assert words in warnings[0], warnings[0]
    if before is not None:
        assert _digest(bad) == before, "the damaged file was left as it was"


def test_a_refused_checkpoint_leaves_the_model_untouched(gan, good_checkpoint, tmp_path):
    bad = tmp_path / "epoch-0002.npz"
    last = sorted(k for k in np.load(good_checkpoint).files if k.startswith("d_optimizer/"))[-1]
    _with(good_checkpoint, bad, arrays={last: np.zeros((7,), np.float32)})  # only the last array is wrong
    for w in gan.generator.weights:
        w.assign(np.full(w.shape, 0.5, w.dtype))
    with pytest.raises(checkpoints.CheckpointError, match=f"{last} has shape"):
        checkpoints.restore(bad, gan)
    assert all((w.numpy() == 0.5).all() for w in gan.generator.weights)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10**9), flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), max_size=4))
def test_damaged_bytes_restore_or_fall_back_never_raise(gan, good_checkpoint, tmp_path_factory, cut, flips):
    folder = tmp_path_factory.mktemp("fuzz")
    shutil.copy(good_checkpoint, folder / "epoch-0002.npz")
    _with(good_checkpoint, folder / "epoch-0001.npz", meta={"epoch": 1})
    data = bytearray((folder / "epoch-0002.npz").read_bytes())
    for at, mask in flips:
        data[at % len(data)] ^= mask
    data = data[: len(data) - cut % 64] if cut % 3 else data[: cut % len(data)]
    (folder / "epoch-0002.npz").write_bytes(bytes(data))
    warnings: list[str] = []
    meta = checkpoints.latest_valid(folder, gan, warn=warnings.append)
    assert meta is not None and meta["epoch"] in (1, 2)
    assert (meta["epoch"] == 1) == bool(warnings)
