"""Statistics for reports: what the runs support, and no more.

Each module answers one question:

* ``normalise`` — how do runs of different classes share one scale? A value as a
  fraction of the base arm's mean on its class; a base mean near zero is refused.
* ``paired`` — is an arm better than, worse than or equivalent to a base (within
  a margin), or is it inconclusive? Runs paired by (class, seed); paired t-test,
  TOST and an interval, within one class or pooled over classes. Results are
  :class:`Comparison` records with a plain ``sentence()``.
* ``family`` — what do the verdicts become when several comparisons are read
  together? Holm's correction over a declared family.
* ``aggregates`` — how do many runs over several classes summarise robustly?
  Interquartile mean, stratified bootstrap intervals, probability of
  improvement and performance profiles (Agarwal et al. 2021).
* ``power`` — can a plan with n pairs detect the change it cares about?
  Minimum detectable effect, power, pairs needed, sd from pilot runs.
* ``budget`` — how many trials does a design need to reach its best? Expected
  best of k trials and the share of trials near the best (Lucic et al. 2018).

Only numpy, SciPy and statsmodels are used (SciPy and statsmodels imported
inside functions, since they take about a second to load).
"""

from harness.stats.aggregates import (
                                      Interval,
                                      iqm,
                                      performance_profile,
                                      probability_of_improvement,
                                      stratified_bootstrap_ci,
)
from harness.stats.budget import BudgetPoint, exact_expected_best, expected_best, share_within
from harness.stats.family import adjust_family, holm
from harness.stats.normalise import normalise_by_base
from harness.stats.paired import VERDICTS, Comparison, compare_paired, compare_pooled
from harness.stats.power import (
                                      Detectability,
                                      can_detect,
                                      minimum_detectable_effect,
                                      pairs_needed,
                                      power_of,
                                      sd_from_pilot,
)

__all__ = [
    "VERDICTS", "BudgetPoint", "Comparison", "Detectability", "Interval", "adjust_family", "can_detect",
    "compare_paired", "compare_pooled", "exact_expected_best", "expected_best", "holm", "iqm",
    "minimum_detectable_effect", "normalise_by_base", "pairs_needed", "performance_profile", "power_of",
    "probability_of_improvement", "sd_from_pilot", "share_within", "stratified_bootstrap_ci",
]
