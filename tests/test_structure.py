"""The code's structure: no import cycle, fast commands that load no framework, and a CLI
derived from the run configuration.

(That the metrics package imports no tracking, sampling, run config or MLflow is
tests/test_metrics_provenance.py::test_the_metrics_package_holds_no_workflow.)
"""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli, flags
from harness.config import RunConfig
from studies.settings import NOT_STUDY_FLAGS, STUDY_DEFAULTS, StudySettings

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "variants", "studies", "reports")
HEAVY = ("tensorflow", "keras", "mlflow", "optuna")


# --- no import cycle -------------------------------------------------------------------------
def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The imports that run when the module is imported: not in functions or classes, not TYPE_CHECKING."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                todo.extend(getattr(node, field, []))
    return found


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports at module level (``from a import b``: ``a.b``
    when b is a module, else ``a``). A package's own import of its parent is not an edge."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in _module_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
                continue
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                edges.add(target if target in modules else base)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as the path around it), or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_packages_import_each_other_without_a_cycle():
    graph = _import_graph()
    assert {"harness.cli", "harness.commands.training", "studies.runner", "reports.build"} <= set(graph)
    assert "harness.config" in graph["harness.commands.training"]  # the walk sees real imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


# --- fast commands --------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--help"], ["variants"], ["datasets"]], ids=" ".join)
def test_fast_commands_load_no_framework(argv, tmp_path):
    code = ("import runpy, sys\n"
            f"sys.argv = ['harness', *{argv!r}]\n"
            "try:\n"
            "    runpy.run_module('harness', run_name='__main__')\n"
            "except SystemExit as exit:\n"
            "    assert not exit.code, exit.code\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == "[]", f"{' '.join(argv)} imported {done.stderr.splitlines()[-1]}"
    assert done.stdout  # it did answer


# --- the CLI derived from the run configuration ---------------------------------------------
def _command(name: str) -> dict[str, object]:
    """dest -> argparse action of ``python -m harness <name>``."""
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    return {action.dest: action for action in commands.choices[name]._actions}


def _cli_settings(cls) -> dict[str, dataclasses.Field]:
    return {name: f for name, f in flags.settings_of(cls).items() if f.metadata["cli"]}


def _default(field: dataclasses.Field):
    return None if field.default is dataclasses.MISSING else field.default


def test_every_run_setting_is_a_run_flag_and_nothing_else_is():
    actions, settings = _command("run"), _cli_settings(RunConfig)
    own = {"help", "verbose", "data_root", "from_study", "storage", "resume", "register"}
    assert set(actions) == set(settings) | own
    for name, field in settings.items():
        action = actions[name]
        assert flags.flag_of(field) in action.option_strings, name
        assert set(field.metadata["aliases"]) <= set(action.option_strings), name
        assert action.default == _default(field), name
        assert action.choices == field.metadata["choices"], name
        assert action.help.startswith(field.metadata["help"]), name


def test_study_flags_are_the_run_settings_less_the_searched_plus_the_study_settings():
    actions = _command("study")
    run = {n: f for n, f in _cli_settings(RunConfig).items() if n not in NOT_STUDY_FLAGS}
    study = _cli_settings(StudySettings)
    assert not set(run) & set(study)  # one flag, one meaning
    assert set(actions) == set(run) | set(study) | {"help", "verbose", "data_root", "space", "param"}
    for name, field in {**run, **study}.items():
        assert flags.flag_of(field) in actions[name].option_strings, name
        assert actions[name].default == STUDY_DEFAULTS.get(name, _default(field)), name
    assert set(STUDY_DEFAULTS) <= set(run)
