"""Which backbone made a FID/KID/IS value, and whether that backbone is good enough to read it.

Every evaluated run logs its backbone's identity as params (``Evaluator.params()``):

  eval_backbone           the network's name: ``inception-2015-12-05`` or ``cifar10_classifier-v1``
  eval_backbone_md5       md5 of the network's content: the Keras file of the offline classifier,
                          the GraphDef bytes of Inception (the same graph as ``.pb`` or inside the
                          ``.tgz`` gives the same md5)
  eval_backbone_settings  how it was made, in words (channels, epochs, images; Inception's layers)
  eval_backbone_test_acc  the offline classifier's CIFAR-10 test accuracy, from the .json beside it
  eval_n_real/eval_n_fake the real and generated images the value compares
  eval_reference          the split the samples are compared with: ``test`` (held out) or ``train``
  eval_n_curve            generated images of a quick (mid-training) evaluation and of every PRDC value
  eval_prdc_k             k of precision/recall and of density/coverage, ``3/5``
  eval_fid_infinity       ``on`` when the final evaluation also gave FID∞
  eval_floor              ``train images`` when ``*_floor`` values were logged, else ``none``

Two values compare only when every param of ``EVAL_PARAMS`` is equal: the same
name can hold a quick two-epoch classifier and the full one, whose FIDs are on
different scales; a run scored against its training images is not comparable
with one scored against held-out images. Runs logged before a param existed
have None in its place and are grouped only with each other. Settings and accuracy follow from the file (its md5), so
they describe the key without being part of it.

The quality floor: an offline classifier under ``MIN_TEST_ACCURACY`` (80 %)
CIFAR-10 test accuracy gets a warning wherever its values are shown. The full
recipe (``backbone train`` with its defaults) reaches 85.8 %; a shortened one
(2 epochs, 8 channels, 5,000 images) reached 36 % and scored every run IS
1.00 ± 0.00 and KID in the thousands: its features do not tell images apart.
80 % leaves room for seed-to-seed variation of the full recipe while catching
any run of it that was cut short. Inception has no floor here.

Imports nothing heavy: the report and the CLI read these without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# The one definition of "computed the same way": compare, group or average
# FID/KID/IS values only between runs whose params agree on all of these.
EVAL_PARAMS: tuple[str, ...] = ("eval_backbone", "eval_backbone_md5", "eval_n_real", "eval_n_fake",
                                 "eval_reference", "eval_n_curve", "eval_prdc_k", "eval_fid_infinity")
# Logged alongside, for people; fixed by the md5, so not part of the key.
DESCRIPTION_PARAMS: tuple[str, ...] = ("eval_backbone_settings", "eval_backbone_test_acc")

# Offline classifiers below this CIFAR-10 test accuracy give values not worth reading.
MIN_TEST_ACCURACY = 0.80
OFFLINE_PREFIX = "cifar10_classifier"  # names of the offline backbone, every version


@dataclass(frozen=True)
class BackboneIdentity:
    """What a backbone is: name, content md5, how it was made and (offline only) its test accuracy."""

    name: str
    md5: str
    settings: str
    test_accuracy: float | None = None

    def params(self) -> dict[str, str]:
        """The ``eval_backbone*`` params (``eval_backbone_test_acc`` only when there is one)."""
        out = {"eval_backbone": self.name, "eval_backbone_md5": self.md5, "eval_backbone_settings": self.settings}
        if self.test_accuracy is not None:
            out["eval_backbone_test_acc"] = f"{self.test_accuracy:.4f}"
        return out

    @property
    def warning(self) -> str | None:
        """The quality warning for values made with this backbone, or None."""
        return quality_warning(self.params())


def eval_key(params: Mapping[str, str]) -> tuple[str | None, ...] | None:
    """The values of ``EVAL_PARAMS`` in a run's params; None for a run never evaluated.

    A run logged before the md5 was recorded gets None in its place, so it is
    grouped only with other such runs.
    """
    if "eval_backbone" not in params:
        return None
    return tuple(params.get(k) for k in EVAL_PARAMS)


def describe(params: Mapping[str, str]) -> str:
    """One line saying how a run's FID/KID/IS were computed (from its logged params)."""
    name = params.get("eval_backbone")
    if name is None:
        return "not evaluated"
    md5 = params.get("eval_backbone_md5")
    parts = [f"file md5 {md5[:8]}" if md5 else "backbone file not recorded"]
    accuracy = _accuracy(params)
    if accuracy is not None:
        parts.append(f"test acc {accuracy:.1%}")
    counts = f"{params.get('eval_n_real', '?')} real / {params.get('eval_n_fake', '?')} fake"
    if "eval_reference" in params:
        counts += f" against the {params['eval_reference']} split"
    return f"{name} ({', '.join(parts)}), {counts}"


def quality_warning(params: Mapping[str, str]) -> str | None:
    """Why values made as ``params`` say are not worth reading, or None when they are.

    Applies the floor to an offline classifier's recorded test accuracy; an
    offline classifier without a recorded accuracy (runs logged before it was
    recorded) is warned about too, since a quick one cannot be told apart.
    """
    name = params.get("eval_backbone") or ""
    if not name.startswith(OFFLINE_PREFIX):
        return None
    accuracy = _accuracy(params)
    if accuracy is None:
        return (f"The offline backbone {name} of these values has no recorded file or test accuracy (logged "
                f"before they were recorded): a quickly trained one cannot be told from the full one, and "
                f"their values may be mixed here. Score new runs to compare them safely.")
    if accuracy < MIN_TEST_ACCURACY:
        md5 = params.get("eval_backbone_md5") or ""
        return (f"The offline backbone {name} (md5 {md5[:8]}) has {accuracy:.1%} CIFAR-10 test accuracy, "
                f"below the {MIN_TEST_ACCURACY:.0%} floor: FID, KID and IS from it say little (IS near 1 and "
                f"an inflated KID are typical). Train the full backbone (`python -m harness backbone train`; "
                f"its defaults reach about 86%) or use the Inception graph.")
    return None


def _accuracy(params: Mapping[str, str]) -> float | None:
    try:
        return float(params["eval_backbone_test_acc"])
    except (KeyError, TypeError, ValueError):
        return None
