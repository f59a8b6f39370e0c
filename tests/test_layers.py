"""The packages are layered: a lower layer never imports a higher one, lazily or not.

Each unit (a package, or a module of the base layer) belongs to one layer,
lowest first. Every import in a unit's files counts, at module level or
inside a function: a lazy import is still a dependency. A unit may import
units of its own layer or below; a new unit must be given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "variants", "studies", "reports")

LAYERS: tuple[tuple[str, ...], ...] = (
    # the package root and what everything may use: errors for people, settings, checksums
    ("harness", "harness.errors", "harness.flags", "harness.checksums", "harness.quiet", "harness.images",
     "harness.processes"),
    ("harness.data", "variants", "harness.stats"),
    ("harness.config",),
    ("harness.store",),           # the only code that imports MLflow
    ("harness.measure",),         # metric formulas, backbones, the evaluator
    ("harness.train",),           # the GAN, its step and run(config)
    ("harness.generators", "harness.notebooks", "studies"),
    ("harness.campaign",),
    ("reports",),                 # reads what the layers below stored; never trains
    ("harness.commands",),
    ("harness.cli", "harness.__main__"),
)
# Units of one layer that must not import each other (each stands on the layers below).
APART = {("harness.generators", "harness.notebooks"), ("harness.generators", "studies"),
         ("harness.notebooks", "studies"), ("harness.data", "variants"), ("harness.data", "harness.stats"),
         ("variants", "harness.stats")}


def _unit_of(module: str) -> str | None:
    """The longest unit that ``module`` is or lies inside."""
    units = [u for layer in LAYERS for u in layer if module == u or module.startswith(u + ".")]
    return max(units, key=len) if units else None


def _layer_of(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in the file (``from a import b`` gives a and a.b)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _files() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = path
    return found


def test_every_module_has_a_layer():
    missing = sorted(name for name in _files() if _unit_of(name) is None)
    assert not missing, f"give these a layer in LAYERS: {missing}"


def test_no_layer_imports_a_higher_one():
    wrong = []
    for name, path in _files().items():
        source = _unit_of(name)
        for imported in _imports(path):
            target = _unit_of(imported)
            if target is None or target == source:
                continue
            if _layer_of(target) > _layer_of(source):
                wrong.append(f"{name} imports {imported} ({source} is below {target})")
            elif _layer_of(target) == _layer_of(source) and tuple(sorted((source, target))) in \
                    {tuple(sorted(pair)) for pair in APART}:
                wrong.append(f"{name} imports {imported} ({source} and {target} stand apart)")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_only_the_store_imports_mlflow():
    wrong = sorted(name for name, path in _files().items()
                   if _unit_of(name) != "harness.store"
                   and any(m == "mlflow" or m.startswith("mlflow.") for m in _imports(path)))
    assert not wrong, f"MLflow is imported outside harness.store by {wrong}"


def test_the_check_catches_an_upward_import(tmp_path):
    # The test must be able to fail: a file of the data layer importing training is caught.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from harness.train.run import run\n")
    assert "harness.train.run" in _imports(bad)
    assert _layer_of(_unit_of("harness.train.run")) > _layer_of(_unit_of("harness.data.cifar10"))


def test_reports_import_nothing_from_the_campaign_package():
    # Reports read runs through the store and its schema, never through the campaign's code.
    wrong = sorted(f"{name} imports {m}" for name, path in _files().items() if name.startswith("reports")
                   for m in _imports(path) if m == "harness.campaign" or m.startswith("harness.campaign."))
    assert not wrong, "\n".join(wrong)


MLFLOW_OBJECTS = ("tracking.client(", ".info.run_id", ".info.status", ".data.params", ".data.metrics", ".data.tags")


def _mlflow_object_uses(text: str) -> list[str]:
    return [s for s in MLFLOW_OBJECTS if s in text]


def test_mlflow_client_and_run_objects_stay_in_the_store():
    # Outside harness/store, runs are StoredRun records: an MLflow upgrade touches one package.
    wrong = sorted(f"{name}: {used}" for name, path in _files().items() if _unit_of(name) != "harness.store"
                   for used in [_mlflow_object_uses(path.read_text())] if used)
    assert not wrong, "\n".join(wrong)
    assert _mlflow_object_uses("c = tracking.client(uri)\nrun.info.status") == ["tracking.client(", ".info.status"]
