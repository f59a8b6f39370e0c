"""RunConfig: the roles each field declares, the sets derived from them, strict construction."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from harness import config, flags
from harness.config import RunConfig
from harness.errors import ConfigError

# The six hand-written lists these sets replace, as they were: a changed role changes
# what is logged, what resuming refuses, a campaign's settings hash or a command's flags.
WAS_LOGGED = {"batch_size", "checkpoint_dir", "clean_checkpoints", "epochs", "eval_every", "eval_samples",
              "keep_checkpoints", "max_images", "sample_every", "seed", "steps_per_execution", "variant", "width",
              "xla"}
WAS_TRAINING = {"batch_size", "d_beta_1", "d_lr", "dataset", "g_beta_1", "g_lr", "image_size", "label_smoothing",
                "max_images", "seed", "variant", "width"}
WAS_CELL_FIELDS = {"checkpoint_dir", "dataset", "progress", "run_name", "seed", "tags", "tracking_uri", "variant"}
WAS_UNTRACKED = {"tracking_uri", "tags", "run_name", "checkpoint_dir", "keep_checkpoints", "clean_checkpoints",
                 "progress", "xla", "steps_per_execution", "sample_every"}
WAS_NOT_STUDY_FLAGS = {"g_lr", "d_lr", "g_beta_1", "d_beta_1", "label_smoothing", "epochs", "batch_size", "run_name"}
WAS_FIDELITY_FLAGS = ("variant", "dataset", "epochs", "batch_size", "max_images", "width", "eval_samples", "backbone",
                      "inception", "xla")
# The fields as they were when the lists were written; fields added since take their roles' defaults.
FIELDS_THEN = {"variant", "dataset", "epochs", "batch_size", "seed", "max_images", "image_size", "g_lr", "d_lr",
               "g_beta_1", "d_beta_1", "label_smoothing", "width", "eval_every", "eval_samples", "backbone",
               "inception", "tracking_uri", "experiment", "run_name", "tags", "checkpoint_dir", "keep_checkpoints",
               "clean_checkpoints", "sample_every", "progress", "xla", "steps_per_execution"}


def _then(names) -> set[str]:
    return set(names) & FIELDS_THEN


def test_derived_sets_equal_the_old_hand_lists():
    assert _then(config.LOGGED) == WAS_LOGGED
    assert _then(config.TRAINING) == WAS_TRAINING
    assert _then(config.NOT_IN_PLAN) == WAS_CELL_FIELDS
    assert _then(config.IDENTIFYING) == FIELDS_THEN - WAS_UNTRACKED
    cli = {f.name for f in dataclasses.fields(RunConfig) if f.metadata["cli"]}
    assert _then(config.NOT_STUDY_FLAGS) & cli == WAS_NOT_STUDY_FLAGS  # tags has no flag either way
    assert tuple(n for n in config.NOTEBOOK if n in FIELDS_THEN) == WAS_FIDELITY_FLAGS  # flag order kept


def test_a_searched_role_is_what_a_study_searches():
    from studies.space import SEARCHED_FIELDS

    assert set(config.SEARCHED) == set(SEARCHED_FIELDS)


def test_config_methods_use_the_derived_sets():
    c = RunConfig("animals_baseline", "horses", tracking_uri="sqlite:///elsewhere.db", xla="off")
    assert set(c.training_fields()) == set(config.TRAINING)
    assert set(c.identifying_fields()) == set(config.IDENTIFYING)
    assert c.replace(xla="on", checkpoint_dir="x").identifying_fields() == c.identifying_fields()
    assert c.replace(epochs=3).identifying_fields() != c.identifying_fields()
    assert c.replace(epochs=3).training_fields() == c.training_fields()  # resuming may train longer


def test_a_new_setting_needs_one_line_and_gets_ordinary_roles():
    @dataclasses.dataclass(frozen=True)
    class Small:
        plain: int = flags.setting(1, help="an ordinary setting")
        fast: bool = flags.setting(False, help="speed", role="speed notebook")

    assert flags.roles(Small) == {"plain": frozenset(), "fast": frozenset({"speed", "notebook"})}


def test_an_unknown_role_word_fails_at_declaration():
    with pytest.raises(ValueError, match="unknown role.*'fastest'.*valid: cell"):
        flags.setting(1, help="x", role="fastest")


def test_from_dict_refuses_unknown_keys_and_wrong_types():
    data = RunConfig("animals_baseline", "horses").to_dict()
    assert RunConfig.from_dict(data) == RunConfig("animals_baseline", "horses")
    with pytest.raises(ConfigError, match="unknown setting 'epoch' \\(did you mean 'epochs'\\?\\)"):
        RunConfig.from_dict({**data, "epoch": 3}, "stored")
    with pytest.raises(ConfigError, match="--batch-size 'x' must be a whole number"):
        RunConfig.from_dict({**data, "batch_size": "x"})
    old = {**data, "overrides": {"g_lr": 0.001}}  # configs stored before the optimiser fields
    del old["g_lr"]
    assert RunConfig.from_dict(old).g_lr == 0.001


def test_replace_refuses_unknown_fields_and_bad_values():
    c = RunConfig("animals_baseline", "horses")
    assert c.replace(epochs=4).epochs == 4
    with pytest.raises(ConfigError, match="unknown setting 'widht'"):
        c.replace(widht=0.5)
    with pytest.raises(ConfigError, match="--epochs 0 must be a positive whole number"):
        c.replace(epochs=0)


def test_study_and_fidelity_flags_come_from_roles():
    from harness.notebooks.fidelity import RUN_FLAGS
    from studies.settings import NOT_STUDY_FLAGS

    parser = argparse.ArgumentParser()
    flags.add_flags(parser, RunConfig, skip=NOT_STUDY_FLAGS)
    dests = {a.dest for a in parser._actions}
    assert "g_lr" not in dests and "run_name" not in dests and "width" in dests and "seed" in dests
    assert RUN_FLAGS == config.NOTEBOOK
