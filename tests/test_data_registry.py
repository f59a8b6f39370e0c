"""How dataset names resolve to sources, and the listing of what is available."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from harness.data import list_datasets, load_dataset
from harness.data.listing import format_table
from harness.data.registry import resolve
from harness.errors import ConfigError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("horses", ("cifar10", "horses", None)),
        ("deer", ("cifar10", "deer", None)),
        ("cats", ("cifar10", "cats", None)),
        ("animals10:cats", ("animals10", "cats", None)),
        ("animals10:gatto", ("animals10", "cats", None)),
        ("squirrels", ("animals10", "squirrels", None)),
        ("digits", ("mnist", "digits", None)),
        ("mnist", ("mnist", "digits", None)),
        ("fashion", ("fashion_mnist", "fashion", None)),
        ("fashion_mnist:fashion", ("fashion_mnist", "fashion", None)),
        ("cifar10:ships@/data/cifar", ("cifar10", "ships", Path("/data/cifar"))),
        ("folder:/photos/golden eagles", ("folder", "golden eagles", Path("/photos/golden eagles"))),
    ],
)
def test_spellings_resolve_by_the_documented_rule(spelling: str, expected: tuple, tmp_path: Path) -> None:
    assert resolve(spelling, tmp_path) == expected


def test_a_folder_in_the_data_root_is_a_plain_name(tmp_path: Path) -> None:
    (tmp_path / "eagles").mkdir()
    for i in range(3):
        Image.new("RGB", (50, 40), (90, 60, 30)).save(tmp_path / "eagles" / f"e{i}.jpg")
    assert resolve("eagles", tmp_path) == ("folder", "eagles", tmp_path / "eagles")
    data = load_dataset("eagles", data_root=tmp_path)
    assert (data.name, data.source, data.count) == ("eagles", "folder", 3)
    rows = {r["spec"]: r for r in list_datasets(tmp_path)}
    assert rows[f"folder:{tmp_path / 'eagles'}"]["count"] == 3


def test_unknown_names_list_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        resolve("eagels", tmp_path)
    message = str(err.value)
    assert message.startswith("unknown dataset 'eagels'. Valid datasets: airplanes, automobiles, birds, butterflies")
    assert f"use folder:PATH, or put them in {tmp_path / 'eagels'}/." in message
    with pytest.raises(ConfigError, match=r"unknown dataset source 'animal10' \(did you mean 'animals10'\?\)"):
        resolve("animal10:horses", tmp_path)
    with pytest.raises(ConfigError, match="gives no folder"):
        resolve("folder:", tmp_path)
    with pytest.raises(ConfigError, match="has '@' but no path after it"):
        resolve("cifar10:horses@", tmp_path)


def test_bad_arguments_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="image size 0 is not an integer from 8 to 1024"):
        load_dataset("horses", image_size=0, data_root=tmp_path)
    with pytest.raises(ConfigError, match="max_images -1 must be a positive integer"):
        load_dataset("horses", max_images=-1, data_root=tmp_path)


def test_table_lists_every_dataset_once(tmp_path: Path) -> None:
    rows = list_datasets(tmp_path)
    assert len(rows) == 22 and len({r["spec"] for r in rows}) == 22
    table = format_table(rows).splitlines()
    assert table[0].split() == ["SPEC", "AVAILABLE", "COUNT", "WHERE"]
    assert table[1].split() == ["cifar10:airplanes", "no", str(tmp_path / "cifar-10-batches-py")]
    assert len(table) == 23
