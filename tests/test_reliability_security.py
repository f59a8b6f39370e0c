"""Loading never runs code; servers bind to this machine; data folders are only read."""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from harness import cli
from harness.data import cifar10
from harness.errors import DataError
from harness.train import checkpoints

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "variants", "studies", "reports")
# The one module allowed to unpickle: CIFAR-10's restricted unpickler.
UNPICKLER = Path("harness/data/cifar10.py")


class _Payload:
    """Unpickling this touches ``marker``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _sources() -> list[tuple[Path, ast.AST]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found.append((path.relative_to(ROOT), ast.parse(path.read_text(), str(path))))
    return found


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def test_no_module_evaluates_strings_or_unpickles_outside_the_restricted_unpickler() -> None:
    unsafe_calls = {"eval", "exec", "pickle.load", "pickle.loads", "pickle.Unpickler", "marshal.loads",
                    "cloudpickle.load", "cloudpickle.loads", "dill.load", "dill.loads", "joblib.load",
                    "yaml.load", "yaml.unsafe_load", "keras.config.enable_unsafe_deserialization"}
    unsafe_keywords = {("allow_pickle", True), ("safe_mode", False), ("shell", True)}
    problems = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                if name in unsafe_calls:
                    problems.append(f"{path}:{node.lineno} calls {name}")
                for kw in node.keywords:
                    if isinstance(kw.value, ast.Constant) and (kw.arg, kw.value.value) in unsafe_keywords:
                        problems.append(f"{path}:{node.lineno} passes {kw.arg}={kw.value.value}")
            if isinstance(node, ast.ClassDef) and path != UNPICKLER:
                if any(_dotted(base).endswith("Unpickler") for base in node.bases):
                    problems.append(f"{path}:{node.lineno} defines an unpickler")
    assert not problems, "\n".join(problems)
    # The scan sees what it should: the restricted unpickler is found where it lives.
    tree = dict(_sources())[UNPICKLER]
    assert any(isinstance(n, ast.ClassDef) and n.name == "_RestrictedUnpickler" for n in ast.walk(tree))


def test_cifar_unpickler_refuses_a_malicious_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = pickle.dumps({b"data": _Payload(marker), b"labels": [0]})
    with pytest.raises(DataError, match="not a plain CIFAR batch"):
        cifar10.restricted_load(evil, "data_batch_1")
    assert not marker.exists()

    # In place of a real batch, the checksum refuses it before any unpickling.
    folder = tmp_path / cifar10.FOLDER
    folder.mkdir()
    for name in cifar10.MD5:
        (folder / name).write_bytes(evil)
    with pytest.raises(DataError, match="md5"):
        cifar10.load_cifar10("train", tmp_path)
    assert not marker.exists()


def test_a_pickled_checkpoint_is_refused_and_the_previous_one_loads(tmp_path: Path) -> None:
    from harness.train.gan import GAN
    from variants import resolve

    gan = GAN(resolve("animals_baseline").scaled(0.125))
    gan.compile()
    checkpoints.save(tmp_path, 1, gan, {"run_id": "r", "config": {}}, arrays={"fixed_noise": np.zeros((2, 3))})
    marker = tmp_path / "ran"
    np.savez(tmp_path / "epoch-0002.npz", meta=np.array([_Payload(marker)], dtype=object))

    warnings: list[str] = []
    meta = checkpoints.latest_valid(tmp_path, gan, warn=warnings.append)
    assert meta["epoch"] == 1 and "epoch-0002.npz" in warnings[0] and "pickled object array" in warnings[0]
    with pytest.raises(checkpoints.CheckpointError, match="pickled object array, refused"):
        checkpoints.read_meta(tmp_path / "epoch-0002.npz")
    assert not marker.exists()


def test_every_server_binds_to_this_machine_by_default() -> None:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    hosts = {name: action.default for name, command in commands.items()
             for action in command._actions if "--host" in action.option_strings}
    assert hosts, "no command takes --host"
    assert set(hosts.values()) <= {"127.0.0.1", "localhost", "::1"}, hosts


def test_a_dataset_folder_is_only_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from harness.data import load_dataset

    images = tmp_path / "eagles"
    images.mkdir()
    for i in range(4):
        Image.new("RGB", (40, 36), (60 * i, 10, 200)).save(images / f"{i}.png")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    before = {p: p.stat().st_mtime_ns for p in images.rglob("*")}
    data = load_dataset(f"folder:{images}")
    assert data.images.shape == (4, 32, 32, 3)
    assert {p: p.stat().st_mtime_ns for p in images.rglob("*")} == before
    written = [p for p in tmp_path.rglob("*") if p.is_file() and images not in p.parents]
    assert written and all((tmp_path / "cache") in p.parents for p in written)
