"""``python -m harness datasets``: the table and the JSON agree with list_datasets.

(That it loads no framework is tests/test_structure.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.data import list_datasets


def test_datasets_json_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mnist").mkdir()
    assert main(["datasets", "--json", "--data-root", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out) == list_datasets(tmp_path)
    assert main(["datasets", "--data-root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SPEC", "AVAILABLE", "COUNT", "WHERE"] and len(lines) == 23

