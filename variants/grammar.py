"""Variant names: presets, and a grammar that names every combination of the axes.

A name is either a preset (``animals_baseline``), or tokens joined by ``_``,
optionally after a preset name; each token sets one axis and the rest come
from the preset (``animals_baseline`` when none is given):

    batchnorm     nobn | bn (both) | bng (generator only) | bnd (discriminator only)
    dropout       nodrop | drophead | dropblocks
    kernel        kernel3 | kernel4        (also k3 | k4)
    g_activation  leaky | relu             (G's hidden activation; D keeps LeakyReLU)
    leaky_relu    layer | inline           (form of every hidden activation, G's ReLU too)
    d_update      split | mixed

Examples: ``bn_kernel4``, ``nobn_kernel3``, ``bn_kernel4_inline_mixed``,
``kernel4_dropblocks``, ``bn_kernel4_relu`` (ReLU in G), ``cifar_bn_mixed``
(cifar_bn with one mixed batch), ``ugto_dcgan64_leaky``.
Giving one axis twice, even with the same value, is an error.
"""

from __future__ import annotations

import itertools
from typing import Any

from harness.errors import ConfigError, closest, shown
from variants.presets import BASELINE, PRESETS
from variants.spec import AXES, VariantSpec

# token -> (axis, value); the one explicit table the grammar reads.
TOKENS: dict[str, tuple[str, Any]] = {
    "nobn": ("batchnorm", "none"),
    "bn": ("batchnorm", "both"),
    "bng": ("batchnorm", "generator"),
    "bnd": ("batchnorm", "discriminator"),
    "nodrop": ("dropout", "none"),
    "drophead": ("dropout", "head"),
    "dropblocks": ("dropout", "blocks"),
    "kernel3": ("kernel", 3),
    "kernel4": ("kernel", 4),
    "k3": ("kernel", 3),
    "k4": ("kernel", 4),
    "leaky": ("g_activation", "leaky_relu"),
    "relu": ("g_activation", "relu"),
    "layer": ("leaky_relu", "layer"),
    "inline": ("leaky_relu", "inline"),
    "split": ("d_update", "split"),
    "mixed": ("d_update", "mixed"),
}



def _first_tokens() -> dict[str, dict[Any, str]]:
    """axis -> value -> the first token ``TOKENS`` lists for it."""
    first: dict[str, dict[Any, str]] = {axis: {} for axis in AXES}
    for token, (axis, value) in TOKENS.items():
        first[axis].setdefault(value, token)
    return first


# axis -> value -> the token canonical names use (``kernel3``, not ``k3``).
CANONICAL = _first_tokens()

# Everything after the docstring's first line: the grammar and its token table.
GRAMMAR_HELP = __doc__.split("\n\n", 1)[1].rstrip() + "\n"


def combinations() -> list[str]:
    """Every grammar name that spells out one canonical token per axis.

    Axes in ``AXES`` order, tokens in ``TOKENS`` order; ``resolve`` maps the
    names one-to-one onto every combination of the axes' values.
    """
    return ["_".join(tokens) for tokens in itertools.product(*(CANONICAL[axis].values() for axis in AXES))]


def resolve(name: str) -> VariantSpec:
    """Return the spec that ``name`` denotes.

    Raises ``ConfigError`` naming the bad token, the valid tokens and presets,
    and the closest match, for unknown or contradictory names.
    """
    name = name.strip()
    if not name:
        raise ConfigError(_invalid("an empty variant name", ""))
    if name in PRESETS:
        return PRESETS[name]
    base, rest = _split_preset(name)
    tokens = rest.split("_") if rest else []
    changes: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for token in tokens:
        if token not in TOKENS:
            raise ConfigError(_invalid(f"unknown token {shown(token)} in variant {shown(name)}", token, name))
        axis, value = TOKENS[token]
        if axis in seen:
            raise ConfigError(
                f"variant {shown(name)} sets {axis} twice ({seen[axis]!r} and {token!r}); "
                f"give one of: {', '.join(t for t, (a, _) in TOKENS.items() if a == axis)}."
            )
        seen[axis] = token
        changes[axis] = value
    source = f"{base.name} with " + ", ".join(f"{TOKENS[t][0]}={TOKENS[t][1]}" for t in tokens)
    return base.replace(name=name, source=source, **changes)


def canonical_name(spec: VariantSpec) -> str:
    """The grammar name that spells out every axis of ``spec`` over its family."""
    return "_".join(CANONICAL[axis][value] for axis, value in spec.axes().items())


def _split_preset(name: str) -> tuple[VariantSpec, str]:
    """Split ``name`` into the longest preset prefix and the tokens after it."""
    for preset in sorted(PRESETS, key=len, reverse=True):
        if name.startswith(preset + "_"):
            return PRESETS[preset], name[len(preset) + 1 :]
    return BASELINE, name


def _invalid(what: str, token: str, name: str = "") -> str:
    guess = None
    if token:
        near = closest(token, TOKENS)
        if near and name:
            guess = "_".join(near if t == token else t for t in name.split("_"))
        guess = guess or near or closest(token, PRESETS)
    if name and not guess:
        guess = closest(name, PRESETS)
    hint = f" Did you mean {shown(guess)}?" if guess else ""
    return (
        f"{what}.{hint} A variant is a preset ({', '.join(PRESETS)}) or tokens joined "
        f"by '_' ({', '.join(TOKENS)}), optionally after a preset name, e.g. "
        "'bn_kernel4' or 'cifar_bn_mixed'. Run `python -m harness variants` for the grammar."
    )


def grid_names(base: str, axes: Any, tokens: Any, where: str) -> list[str]:
    """The variant names a grid over ``base`` denotes: with ``axes="one-at-a-time"`` the base
    and each single-axis change of it (only the changes ``tokens`` name, if given); with a
    list of axes, every combination of their values. ``where`` prefixes error messages
    (e.g. a campaign plan's file and table)."""
    spec = resolve(base)
    prefix = "" if base == BASELINE.name else f"{base}_"
    if axes == "one-at-a-time":
        if tokens is None:
            changes = [CANONICAL[axis][value] for axis in AXES for value in AXES[axis]
                       if value != spec.axes()[axis]]
        else:
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise ConfigError(f"{where}: tokens must be a list of grammar tokens, e.g. [\"bn\", \"kernel4\"].")
            for token in tokens:
                if token not in TOKENS:
                    guess = closest(token, TOKENS)
                    raise ConfigError(f"{where}: unknown token {token!r}"
                                      + (f" (did you mean {guess!r}?)" if guess else "")
                                      + f"; valid: {', '.join(TOKENS)}.")
                axis, value = TOKENS[token]
                if spec.axes()[axis] == value:
                    raise ConfigError(f"{where}: token {token!r} changes nothing: {base} already has "
                                      f"{axis}={value}.")
            changes = list(tokens)
        return [base] + [prefix + token for token in changes]
    if tokens is not None:
        raise ConfigError(f"{where}: tokens go with axes = \"one-at-a-time\"; a factorial takes every "
                          "value of each listed axis.")
    if not isinstance(axes, list) or not axes or not all(isinstance(a, str) for a in axes):
        raise ConfigError(f"{where}: axes must be \"one-at-a-time\" or a list of axes, e.g. "
                          f"[\"batchnorm\", \"kernel\"]; axes: {', '.join(AXES)}.")
    for axis in axes:
        if axis not in AXES:
            guess = closest(axis, AXES)
            raise ConfigError(f"{where}: unknown axis {axis!r}" + (f" (did you mean {guess!r}?)" if guess else "")
                              + f"; axes: {', '.join(AXES)}.")
    return [prefix + "_".join(combo) for combo in
            itertools.product(*([CANONICAL[axis][value] for value in AXES[axis]] for axis in axes))]
