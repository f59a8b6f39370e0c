"""Every flag of every command, given hostile values: a clear error or an answer, never a traceback.

Table-driven over the real parser, so a flag added later is swept too. Nothing
trains: the tracking store is a closed port, the data root is empty, and the
commands that need neither (bench, fidelity, backbone train) have their
library call replaced by one that stops as a missing dataset would.
"""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from harness import cli
from harness.errors import DataError

HOSTILE = ["-1", "0", "1e-9", "nan", "inf", "1e300", "abc", "", "x" * 3000, "it's \"odd\"", "--", "/proc/nope/x"]
# Arguments that make each command valid up to its hostile flag.
BASE = {
    "run": ["--variant", "animals_baseline", "--dataset", "horses"],
    "study": ["--variant", "animals_baseline", "--dataset", "horses", "--trials", "1"],
    "campaign": ["{plan}"],
    "sample": ["--run-id", "abc"], "serve": ["--run-id", "abc"], "register": ["--run-id", "abc", "--name", "n"],
    "export": ["--run-id", "abc"], "eval": ["--run-id", "abc"],
    "backbone": ["train"], "report": [], "bench": [], "fidelity": [], "variants": [], "datasets": [],
}
# Flags whose valid values start long work or a server: swept with invalid values only.
NOT_RUN = {("serve", "--port"), ("serve", "--host")}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = dict(subparsers.choices)
    backbone = next(a for a in commands["backbone"]._actions if isinstance(a, argparse._SubParsersAction))
    commands["backbone"] = backbone.choices["train"]
    return commands


def _cases() -> list[tuple[str, str]]:
    cases = []
    for name, command in _commands().items():
        for action in command._actions:
            if action.option_strings and action.nargs != 0 and not isinstance(action, argparse._HelpAction):
                cases.append((name, action.option_strings[0]))
    return cases


@pytest.fixture
def stopped(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """A closed tracking port, an empty data root, and no benchmark, fidelity or backbone training."""
    import harness.measure.backbone_training
    import harness.commands.notebooks

    def stop(*args, **kwargs):
        raise DataError("stopped before any work (test)")

    for module, name in ((harness.commands.notebooks, "run_benchmark"), (harness.commands.notebooks, "run_fidelity"),
                         (harness.measure.backbone_training, "train_backbone")):
        monkeypatch.setattr(module, name, stop)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    plan = tmp_path / "plan.toml"
    plan.write_text('name = "p"\ndatasets = ["horses"]\nseeds = [0]\nvariants = ["bn"]\n')
    return str(plan)


@pytest.mark.parametrize("command,flag", _cases())
def test_every_flag_takes_hostile_values_without_a_traceback(stopped, command, flag):
    for value in HOSTILE:
        if (command, flag) in NOT_RUN and value in ("0", "1e-9", "abc", ""):
            continue
        argv = [command, *[a.replace("{plan}", stopped) for a in BASE[command]], flag, value,
                "--tracking-uri" if command not in ("bench", "fidelity", "variants", "datasets") else "-v",
                *(["http://127.0.0.1:9"] if command not in ("bench", "fidelity", "variants", "datasets") else [])]
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # argparse: a usage error
                code = exc.code
        assert code in (0, 1, 2), (argv[:6], code)
        assert "Traceback" not in err.getvalue() + out.getvalue(), argv[:6]
        if code:
            message = err.getvalue().strip().splitlines()
            assert message and len(message[-1]) < 4000, (argv[:6], err.getvalue()[-500:])
