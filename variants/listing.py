"""What ``python -m harness variants`` shows: the presets, the name grammar, every combination.

``records(every)`` gives one JSON-able dict per variant, ``listing(every)``
the text the command prints; with ``every``, one grammar name per
combination of the axes follows the presets.
"""

from __future__ import annotations

from typing import Any

from variants.grammar import GRAMMAR_HELP, canonical_name, combinations, resolve
from variants.presets import PRESETS
from variants.spec import AXES, VariantSpec


def _combined(every: bool) -> list[VariantSpec]:
    return [resolve(name) for name in combinations()] if every else []


def records(every: bool = False) -> list[dict[str, Any]]:
    """Per variant: name, axes, canonical name, preset or not, image size, channels, source."""
    return [{"name": s.name, **s.axes(), "canonical": canonical_name(s), "preset": s.name in PRESETS,
             "image_size": s.image_size, "channels": s.channels, "source": s.source}
            for s in [*PRESETS.values(), *_combined(every)]]


def listing(every: bool = False) -> str:
    """The presets with their axes and sources, the grammar, then (``every``) each combination's name."""
    lines = ["Presets (the published notebooks' architectures):", ""]
    for spec in PRESETS.values():
        axes = ", ".join(f"{k}={v}" for k, v in spec.axes().items())
        lines += [f"  {spec.name}", f"    {axes}", f"    {spec.source}", ""]
    lines += ["Names over the axes (" + ", ".join(AXES) + "):", "", GRAMMAR_HELP]
    return "\n".join(lines + [f"  {spec.name}" for spec in _combined(every)])
