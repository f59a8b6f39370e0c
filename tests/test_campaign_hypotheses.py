"""A plan's [hypotheses]: read as data, the control arm added, every mistake named before anything trains."""

from __future__ import annotations

import json

import pytest

from harness.campaign.plan import load_plan
from harness.errors import ConfigError
from harness.stats.design import Hypotheses, Primary
from variants import resolve
from variants.control import control_name

PLAN = """
name = "p"
datasets = ["horses", "birds"]
seeds = [0, 1]
[grid]
base = "animals_baseline"
tokens = ["bn", "kernel4"]
"""


def plan_text(tmp_path, extra: str):
    path = tmp_path / "plan.toml"
    path.write_text(PLAN + extra)
    return load_plan(path)


def test_declared_hypotheses_are_a_frozen_record_and_the_control_is_added(tmp_path):
    plan = plan_text(tmp_path, """
[hypotheses]
primary = [{arm = "bn", metric = "kid", direction = "lower", alpha = 0.01}]
family = ["kernel4"]
margin = 0.2
sd_guess = 0.15
""")
    h = plan.hypotheses
    assert h.base == "animals_baseline" and h.control == "inline" and h.margin == 0.2 and h.sd_guess == 0.15
    assert h.primary == (Primary("bn", "kid", "lower", 0.01),)
    assert h.confirmatory() == (Primary("bn", "kid", "lower", 0.01), Primary("kernel4", "kid", "two-sided", 0.01))
    assert plan.variants[-1] == "inline" and len(plan.cells) == 2 * 4 * 2
    assert any("control arm 'inline' added" in n for n in plan.notes)
    with pytest.raises(AttributeError):
        h.margin = 0.5  # frozen: the plan's analysis cannot change after it is read
    assert Hypotheses.from_dict(json.loads(json.dumps(h.to_dict()))) == h


def test_without_the_table_nothing_is_added_and_a_present_control_is_still_named(tmp_path):
    plain = plan_text(tmp_path, "")
    assert plain.variants == ("animals_baseline", "bn", "kernel4") and plain.hypotheses.control is None
    assert not plain.hypotheses.declared
    path = tmp_path / "inline.toml"
    path.write_text(PLAN.replace('"kernel4"]', '"kernel4", "inline"]'))
    assert load_plan(path).hypotheses.control == "inline"


def test_control_false_or_named(tmp_path):
    assert plan_text(tmp_path, "[hypotheses]\ncontrol = false\n").variants == ("animals_baseline", "bn", "kernel4")
    assert plan_text(tmp_path, '[hypotheses]\ncontrol = "kernel4"\n').hypotheses.control == "kernel4"


@pytest.mark.parametrize("base", ["animals_baseline", "bn", "bn_inline", "cifar_bn", "kernel4_relu"])
def test_the_control_computes_the_same_function_under_another_name(base):
    a, b = resolve(base), resolve(control_name(base))
    differ = {k for k, v in a.to_params().items() if b.to_params()[k] != v} - {"name", "source"}
    assert differ == {"leaky_relu"} and control_name(base) != base


@pytest.mark.parametrize("extra, message", [
    ('primary = [{arm = "bnn", metric = "kid"}]',
     "primary[0] arm: 'bnn' is not an arm of the plan (did you mean 'bn'?)"),
    ('primary = [{arm = "bn", metric = "kdi"}]', "primary[0] metric: 'kdi' cannot be compared (did you mean 'kid'?)"),
    ('primary = [{arm = "bn", metric = "is"}]', "IS has no direction for one class"),
    ('primary = [{arm = "bn", metric = "kid", direction = "lowr"}]',
     "unknown direction 'lowr' (did you mean 'lower'?)"),
    ('primary = [{arm = "animals_baseline", metric = "kid"}]', "is the base"),
    ('primary = [{arm = "bn", metric = "kid", alpah = 0.1}]', "unknown key 'alpah' (did you mean 'alpha'?)"),
    ('margn = 0.1', "[hypotheses]: unknown key 'margn' (did you mean 'margin'?)"),
    ('margin = -0.1', "margin = -0.1 must be a number above 0"),
    ('alpha = 1.5', "alpha = 1.5 must be a number above 0 and below 1"),
    ('family = ["kernel5"]', "family: 'kernel5' is not an arm of the plan (did you mean 'kernel4'?)"),
    ('control = "relu"', "control: 'relu' is not an arm of the plan"),
    ('sd_guess = 0', "sd_guess = 0 must be a positive number"),
    ('base = "bnx"', "base: 'bnx' is not an arm of the plan"),
])
def test_every_mistake_names_its_key(tmp_path, extra, message):
    with pytest.raises(ConfigError) as error:
        plan_text(tmp_path, "[hypotheses]\n" + extra + "\n")
    assert message in str(error.value)


def test_a_control_already_planned_under_another_name_is_not_added_twice(tmp_path):
    path = tmp_path / "named.toml"
    path.write_text('name = "p"\ndatasets = ["horses"]\nseeds = [0, 1]\n'
                    'variants = ["animals_baseline", "animals_baseline_inline"]\n[hypotheses]\n')
    plan = load_plan(path)
    assert plan.variants == ("animals_baseline", "animals_baseline_inline")
    assert plan.hypotheses.control == "animals_baseline_inline" and not [n for n in plan.notes if "control" in n]
