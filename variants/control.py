"""The A/A control of a variant: the same function under another name.

A LeakyReLU written as a layer and one written inline compute the same function,
so a campaign that trains the base both ways measures its own seed noise: a
control judged better or worse than the base says the noise is underestimated.
"""

from __future__ import annotations

from variants.grammar import TOKENS, resolve
from variants.presets import BASELINE, PRESETS


def control_name(base: str) -> str:
    """The A/A arm of ``base``: its name with the LeakyReLU's form flipped (``inline``, or ``layer``).

    A preset gets the token appended (``animals_baseline`` → ``inline``, as the grid
    names it for the baseline; ``cifar_bn`` → ``cifar_bn_inline``); a grammar name
    has its ``layer``/``inline`` token swapped or the token appended.
    """
    flipped = "inline" if resolve(base).leaky_relu == "layer" else "layer"
    if base in PRESETS:
        return flipped if base == BASELINE.name else f"{base}_{flipped}"
    tokens = base.split("_")
    if any(TOKENS.get(t, ("",))[0] == "leaky_relu" for t in tokens):
        return "_".join(flipped if TOKENS.get(t, ("",))[0] == "leaky_relu" else t for t in tokens)
    return f"{base}_{flipped}"


def find_control(base: str, arms: list[str]) -> str | None:
    """The arm among ``arms`` that is ``base``'s control (its architecture under any name), or None."""
    return same_architecture(control_name(base), arms)


def same_architecture(name: str, arms: list[str]) -> str | None:
    """The first of ``arms`` that builds the same networks as ``name`` (its spec but the name), or None."""
    def params(n: str) -> dict:
        return {k: v for k, v in resolve(n).to_params().items() if k not in ("name", "source")}

    target = params(name)
    return next((a for a in arms if params(a) == target), None)
