"""What a plan can detect, in words: the lines ``campaign --dry-run`` and the report print.

From the plan's seeds and classes and the seed-to-seed spread (the sd of
normalised paired differences, see :mod:`.power`), the minimum detectable
effect at the declared power, pooled over classes (the confirmatory scope) and
within one class; and a warning when the plan cannot detect its own margin.
The confirmatory family is tested at alpha / m in the worst case of Holm's
correction over m comparisons, so that alpha is used.
"""

from __future__ import annotations

from harness.stats.design import Hypotheses
from harness.stats.power import minimum_detectable_effect


def power_lines(hypotheses: Hypotheses, seeds: int, classes: int, sd: float | None, source: str) -> list[str]:
    """Lines stating the minimum detectable effect, or why it is unknown; ``source`` says where ``sd`` came from."""
    if sd is None:
        return [f"Minimum detectable effect: unknown, {source}; declare sd_guess in [hypotheses] "
                "(e.g. 0.15) to size the plan before it runs."]
    if seeds < 2:
        return [f"Minimum detectable effect: none, {seeds} seed(s) per cell; a paired test needs at least 2."]
    family = max(1, len(hypotheses.confirmatory()))
    alpha = min((p.alpha for p in hypotheses.confirmatory()), default=hypotheses.alpha) / family
    pooled = minimum_detectable_effect(seeds * classes, sd, alpha, hypotheses.power)
    single = minimum_detectable_effect(seeds, sd, hypotheses.alpha, hypotheses.power)
    lines = [f"Minimum detectable effect at {100 * hypotheses.power:g}% power (two-sided paired t-test): "
             f"±{100 * pooled:.1f}% of the base's value pooled over {classes} class(es) ({seeds * classes} pairs, "
             f"alpha {alpha:.3g}" + (f" = {alpha * family:g} / {family} for Holm's worst case" if family > 1 else "")
             + f"); ±{100 * single:.1f}% within one class ({seeds} pairs, alpha {hypotheses.alpha:g}); "
             f"from a seed-to-seed sd of {100 * sd:.1f}% ({source})."]
    if pooled > hypotheses.margin:
        lines.append(f"Warning: this plan cannot detect its own margin: a change of ±{100 * hypotheses.margin:g}% "
                     f"is below the ±{100 * pooled:.1f}% it detects with {100 * hypotheses.power:g}% power; add "
                     "seeds or classes, or read its 'inconclusive' verdicts as expected.")
    return lines
