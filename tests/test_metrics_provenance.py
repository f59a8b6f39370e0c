"""Provenance: the comparison key, the description, the quality floor, and metrics/ staying math-only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness.measure.provenance import (
    EVAL_PARAMS,
    MIN_TEST_ACCURACY,
    BackboneIdentity,
    describe,
    eval_key,
    quality_warning,
)

MD5 = "0123456789abcdef0123456789abcdef"


def _params(accuracy: float | None, name: str = "cifar10_classifier-v1") -> dict[str, str]:
    identity = BackboneIdentity(name=name, md5=MD5, settings="channels=16, epochs=6", test_accuracy=accuracy)
    return {**identity.params(), "eval_n_real": "5000", "eval_n_fake": "5000"}


def test_the_floor_warns_below_80_percent_only():
    assert MIN_TEST_ACCURACY == 0.80
    assert quality_warning(_params(0.858)) is None and quality_warning(_params(0.80)) is None
    warning = quality_warning(_params(0.3612))
    assert "36.1%" in warning and "below the 80% floor" in warning and "01234567" in warning
    assert "backbone train" in warning  # says what to do
    assert BackboneIdentity("cifar10_classifier-v1", MD5, "", 0.5).warning == quality_warning(_params(0.5))
    # Inception has no floor; an offline backbone that recorded no accuracy cannot be vouched for.
    assert quality_warning(_params(None, name="inception-2015-12-05")) is None
    assert "no recorded file or test accuracy" in quality_warning({"eval_backbone": "cifar10_classifier-v1"})
    assert quality_warning({}) is None


def test_the_key_separates_files_of_one_name_and_old_runs():
    full, quick = _params(0.858), {**_params(0.36), "eval_backbone_md5": "f" * 32}
    assert EVAL_PARAMS == ("eval_backbone", "eval_backbone_md5", "eval_n_real", "eval_n_fake", "eval_reference",
                           "eval_n_curve", "eval_prdc_k", "eval_fid_infinity")
    assert eval_key(full)[:4] == ("cifar10_classifier-v1", MD5, "5000", "5000")
    assert eval_key(full) != eval_key(quick)
    old = {"eval_backbone": "cifar10_classifier-v1", "eval_n_real": "5000", "eval_n_fake": "5000"}
    assert eval_key(old) == ("cifar10_classifier-v1", None, "5000", "5000", None, None, None, None)  # apart
    # The same network and counts against the training images is another column than against held-out ones.
    held_out = {**full, "eval_reference": "test", "eval_n_curve": "1000", "eval_prdc_k": "3/5",
                "eval_fid_infinity": "off"}
    assert eval_key(held_out) != eval_key({**held_out, "eval_reference": "train"})
    assert eval_key(held_out) != eval_key({**held_out, "eval_fid_infinity": "on"})
    assert eval_key({"seed": "0"}) is None


def test_the_description_names_file_accuracy_and_counts():
    assert describe(_params(0.858)) == (
        "cifar10_classifier-v1 (file md5 01234567, test acc 85.8%), 5000 real / 5000 fake")
    assert describe({"eval_backbone": "inception-2015-12-05", "eval_n_real": "1", "eval_n_fake": "2"}) == (
        "inception-2015-12-05 (backbone file not recorded), 1 real / 2 fake")
    assert describe({}) == "not evaluated"


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "harness" / "metrics").rglob("*.py")),
                         ids=lambda p: p.name)
def test_the_metrics_package_holds_no_workflow(path):
    """Formulas, backbones and the evaluator only: no tracking, run config or sampling workflow."""
    forbidden = {"harness.store.tracking", "harness.generators.sampling", "harness.config", "mlflow"}
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
    assert not {m for m in imported if any(m == f or m.startswith(f + ".") for f in forbidden)}
