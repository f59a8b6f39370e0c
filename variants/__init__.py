"""What is compared: the variant spec, the presets and the name grammar.

``resolve(name)`` turns a name into a ``VariantSpec``; ``combinations()``
lists one grammar name per combination of the axes; ``variants.builders``
(which imports Keras) turns a spec into networks.
"""

from variants.grammar import GRAMMAR_HELP, TOKENS, canonical_name, combinations, resolve
from variants.presets import BASELINE, PRESETS
from variants.spec import AXES, DBlock, VariantSpec

__all__ = [
    "AXES", "BASELINE", "GRAMMAR_HELP", "PRESETS", "TOKENS", "DBlock", "VariantSpec",
    "canonical_name", "combinations", "resolve",
]
