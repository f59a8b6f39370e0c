"""Generated variant names and command lines: an answer or a clear error, never a traceback.

The CLI is called in-process (``harness.cli.main``) for speed; training is never
reached because loading the data is replaced by a stub that stops the command
with a DataError, as a missing dataset would.
"""

from __future__ import annotations

import contextlib
import errno
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import cli
from harness.errors import ConfigError, DataError, HarnessError, describe_os_error
from harness.train import run as train
from variants import PRESETS, TOKENS, VariantSpec, resolve

# Command-line arguments cannot hold NUL bytes: the OS would never pass one.
TEXT = st.text(st.characters(blacklist_characters="\x00"), max_size=12)
PIECES = sorted(TOKENS) + sorted(PRESETS) + ["", "bn", "kernel5", "BN", "animals", "_", " "]
VARIANT_NAMES = st.one_of(TEXT, st.lists(st.sampled_from(PIECES), max_size=6).map("_".join))

# The run command's flags, taken from the real parser. --from-study would open an
# Optuna storage and --register is reached only after training: both are left out.
RUN_FLAGS = sorted(
    option for action in cli.build_parser()._subparsers._group_actions[0].choices["run"]._actions
    for option in action.option_strings if option not in ("--from-study", "--storage", "--register")
)
VALUES = st.one_of(
    TEXT, VARIANT_NAMES,
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["horses", "nope", "folder:", "cifar10:cats@", "0", "-1", "1e-300", "nan", "inf", "--"]),
)
WORDS = st.one_of(st.sampled_from(RUN_FLAGS), VALUES, st.sampled_from(["-h", "--help", "--json", "--all"]))
ARGVS = st.one_of(
    st.tuples(st.sampled_from(["run", "variants"]), st.lists(WORDS, max_size=10)).map(lambda t: [t[0], *t[1]]),
    st.lists(st.one_of(TEXT, WORDS), max_size=6),  # no command, or not a command at all
)


@settings(max_examples=300, deadline=None, database=None)
@given(VARIANT_NAMES)
def test_variant_names_resolve_or_raise_config_error(name: str) -> None:
    try:
        spec = resolve(name)
    except ConfigError as exc:
        assert str(exc)  # a message, and nothing but a ConfigError
    else:
        assert isinstance(spec, VariantSpec)


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch, tmp_path) -> list[tuple]:
    """Stop every run at data loading; record what reached it."""
    import harness.data

    reached: list[tuple] = []

    def load_dataset(name, **kwargs):
        reached.append((name, kwargs))
        raise DataError("stopped before loading data (test)")

    def find_resumable(config):
        raise ConfigError("no run to resume (test)")

    monkeypatch.setattr(harness.data, "load_dataset", load_dataset)
    monkeypatch.setattr(train, "load_dataset", load_dataset)  # train imports it by name
    monkeypatch.setattr(train, "find_resumable", find_resumable)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))  # --data-root rewrites it
    monkeypatch.chdir(tmp_path)
    return reached


@settings(max_examples=250, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=ARGVS)
def test_command_lines_never_end_in_a_traceback(no_training: list, argv: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
            code = exc.code
    assert code in (0, 1, 2, 130) or code is None, (argv, code)
    if code:
        assert "error" in err.getvalue(), (argv, err.getvalue())


def test_the_stub_is_reached_by_a_valid_command_line(no_training: list) -> None:
    """The fuzz above is only meaningful if valid flags get as far as loading data."""
    with contextlib.redirect_stderr(io.StringIO()) as err:
        code = cli.main(["run", "--variant", "bn_kernel4", "--dataset", "horses", "--g-lr", "1e-4"])
    assert code == DataError.exit_code and "stopped before loading data" in err.getvalue()
    assert no_training[0][0] == "horses"
    assert issubclass(DataError, HarnessError)


@settings(max_examples=300, deadline=None, database=None)
@given(code=st.one_of(st.sampled_from(sorted(errno.errorcode)), st.integers(-5, 5000), st.none()),
       name=st.one_of(st.none(), st.text(max_size=300), st.binary(max_size=300).filter(lambda b: b"\0" not in b)))
def test_any_os_error_is_described_in_one_line(code, name) -> None:
    exc = OSError(code, "some failure", name) if code is not None else OSError("some failure")
    message = describe_os_error(exc)
    assert isinstance(message, str) and message and "\n" not in message and "\r" not in message
    assert len(message) < 400, "a long name is shortened"
