"""Many comparisons at once: Holm's correction of the difference tests in a declared family.

With m difference tests at alpha each, the chance that at least one says "better"
or "worse" by seed noise alone grows towards m * alpha. Holm's step-down method
keeps that chance (the family-wise error rate) under alpha, with more power than
Bonferroni. The family is declared by the caller: the comparisons one report
draws conclusions from together (e.g. every arm against the base on one metric).

Only difference p-values are adjusted. Equivalence (TOST) verdicts are not: each
TOST claims "within ±margin" for one arm, and it is the intersection-union test
whose own error rate is already at most alpha per claim; a report that reads
many equivalence claims as one joint claim should say so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from harness.errors import ConfigError
from harness.stats.paired import Comparison, decide


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values, in the order given (``statsmodels`` ``multipletests(method="holm")``).

    None or NaN entries (comparisons without a test) stay None and are not in the family.
    Raises ConfigError for a p-value outside [0, 1].
    """
    from statsmodels.stats.multitest import multipletests

    present = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    for i in present:
        if not 0 <= pvalues[i] <= 1:
            raise ConfigError(f"p-value {pvalues[i]!r} (position {i}) is not between 0 and 1.")
    out: list[float | None] = [None] * len(pvalues)
    if present:
        adjusted = multipletests([pvalues[i] for i in present], method="holm")[1]
        for i, p in zip(present, adjusted):
            out[i] = float(p)
    return out


def adjust_family(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Holm-adjust the difference p-values of one family of comparisons and recompute their verdicts.

    Takes the comparisons (each unadjusted, all at one alpha); returns new
    :class:`Comparison` objects in the same order, with ``p_adjusted`` and
    ``family_size`` set (the number that had a test) and the verdict decided from
    the adjusted p. Refused comparisons (no numbers) pass through unchanged.
    """
    alphas = {c.alpha for c in comparisons}
    if len(alphas) > 1:
        raise ConfigError(f"the family mixes alpha levels {sorted(alphas)}; adjust comparisons made at one alpha.")
    already = [c for c in comparisons if c.family_size > 1]
    if already:
        raise ConfigError(f"{already[0].arm} vs {already[0].base} was already adjusted in a family of "
                          f"{already[0].family_size}; adjust each comparison once, from compare_paired/pooled.")
    keys = [(c.arm, c.base, c.metric, c.scope) for c in comparisons]
    if len(set(keys)) < len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise ConfigError(f"{twice[0]} vs {twice[1]} on {twice[2]} ({twice[3] or 'no scope'}) is in the family "
                          "twice; each comparison counts once.")
    adjusted = holm([c.p_difference for c in comparisons])
    size = sum(p is not None for p in adjusted)
    out = []
    for c, p in zip(comparisons, adjusted):
        if p is None:
            out.append(c)
            continue
        verdict, reason = decide(p, c.p_equivalence, c.direction, c.margin, c.alpha, c.lower_is_better)
        out.append(dataclasses.replace(c, p_adjusted=p, family_size=size, verdict=verdict, reason=reason))
    return out
