"""`backbone train` and `eval`: thin commands over the metrics library."""

from __future__ import annotations

import pytest

from harness import cli


def test_backbone_train_passes_its_flags_to_the_library(monkeypatch, capsys, tmp_path):
    from harness.measure import backbone_training as backbone

    seen = {}

    def fake_train(**kwargs):
        seen.update(kwargs)
        return {"accuracy": 0.8312, "seconds": 1200.0, "path": "/cache/backbones/x.keras", "run_id": "abc"}

    monkeypatch.setattr(backbone, "train_backbone", fake_train)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))  # main() sets it from --data-root
    code = cli.main(["backbone", "train", "--epochs", "3", "--max-images", "500",
                     "--tracking-uri", "sqlite:///x.db", "--data-root", str(tmp_path)])
    assert code == 0
    assert seen == {"epochs": 3, "channels": 16, "max_images": 500, "data_root": str(tmp_path),
                    "tracking_uri": "sqlite:///x.db"}
    assert "test accuracy 83.12% in 20.0 min" in capsys.readouterr().out


def test_eval_reports_a_missing_store_without_a_traceback(tmp_path, capsys):
    code = cli.main(["eval", "--run-id", "0" * 32, "--tracking-uri", f"sqlite:///{tmp_path}/nowhere/m.db"])
    assert code == 2
    assert "error: tracking store" in capsys.readouterr().err


def test_eval_refuses_too_few_samples(capsys):
    assert cli.main(["eval", "--run-id", "x", "--eval-samples", "5"]) == 2
    assert "--eval-samples 5 must be at least 10" in capsys.readouterr().err


def test_eval_names_the_valid_backbones():
    with pytest.raises(SystemExit):
        cli.main(["eval", "--run-id", "x", "--backbone", "vgg"])
