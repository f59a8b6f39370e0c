"""``python -m harness datasets``: the table and the JSON agree with list_datasets."""

from __future__ import annotations

import json
import subprocess
import sys
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


def test_datasets_command_does_not_load_tensorflow(tmp_path: Path) -> None:
    code = ("import sys; from harness.cli import main; main(['datasets', '--data-root', sys.argv[1]]); "
            "sys.exit('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
