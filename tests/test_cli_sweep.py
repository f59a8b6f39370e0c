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
    import harness.commands.notebooks
    import harness.measure.backbone_training

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


# --- numeric flags: 0, -1, NaN and a huge value, for every command --------------------------------
NUMERIC = ["0", "-1", "nan", "1e300"]
HANG_S = 60  # far above any refusal; a command that loops (bench --steps 0 did) fails here instead
STOPS = ("stopped before any work", "not found", "no such", "is unreachable", "does not exist")


def _kind(action: argparse.Action) -> type | None:
    """int or float when the flag parses numbers (argparse's own type, or the settings' parser)."""
    if action.type in (int, float):
        return action.type
    if action.type is None:
        return None
    for text, kind in (("1.5", float), ("2", int)):
        try:
            action.type(text)
            return kind
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            continue
    return None


def _numeric_cases() -> list[tuple[str, str, str]]:
    return [(name, action.option_strings[0], value)
            for name, command in _commands().items() for action in command._actions
            if action.option_strings and action.nargs != 0 and _kind(action) for value in NUMERIC
            if (name, action.option_strings[0]) not in NOT_RUN]


# Hostile-looking values that mean something: accepted on purpose.
MEANINGFUL = {"--seed": {"0"}, "--eval-every": {"0"}, "--keep-checkpoints": {"0"}, "--interpolate": {"0"},
              "--label-smoothing": {"0"}, "--g-beta1": {"0"}, "--d-beta1": {"0"}}


@pytest.mark.parametrize("command,flag,value", _numeric_cases())
def test_every_numeric_flag_refuses_zero_negative_nan_and_huge_or_means_them(stopped, command, flag, value):
    import signal

    def hang(signum, frame):
        raise AssertionError(f"{command} {flag} {value} still running after {HANG_S} s")

    argv = [command, *[a.replace("{plan}", stopped) for a in BASE[command]], flag, value,
            *(["--tracking-uri", "http://127.0.0.1:9"] if command not in ("bench", "fidelity") else [])]
    if command == "campaign":
        argv.append("--dry-run")
    err, out = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(HANG_S)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = cli.main(argv)
            except SystemExit as exc:
                code = exc.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    text = err.getvalue() + out.getvalue()
    assert "Traceback" not in text, argv
    message = err.getvalue().strip().splitlines()
    accepted = code == 0 or (message and any(stop in message[-1] for stop in STOPS))
    if accepted:
        assert value in MEANINGFUL.get(flag, set()), f"{argv[:8]} was accepted: {message[-1:] or code}"
    else:
        assert code in (1, 2) and message and flag in text, (argv[:8], code, text[-400:])
