"""Which real images a run's samples are scored against, and which give its floor.

A dataset with a held-out split (CIFAR-10's and MNIST's ``test``: 1,000
images of a CIFAR-10 class) is scored against it by default, so a generator
that memorises its training images does not score best. A dataset without
one (a folder, Animals-10) is scored against its training images, and the
run says so in its log and in the ``eval_reference`` param.

The floor is what "as good as real" looks like at the same sample size and
backbone: the class's training images (all of them, whatever ``--max-images``
kept for training) against the held-out reference. Against a training-image
reference it would compare the images with themselves, so there is none.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.config import EVAL_REFERENCES as REFERENCES
from harness.data import Dataset, load_dataset
from harness.errors import ConfigError

# The split each source holds besides "train" (sources not named have none).
HELD_OUT = {"cifar10": "test", "mnist": "test", "fashion_mnist": "test"}


@dataclass(frozen=True, eq=False)
class RealImages:
    """The reference a run is scored against and, when held out, the training images for its floor.

    split: "test" or "train", the split ``reference`` holds.
    floor: the class's training images, or None when the reference is them.
    note: why the reference is the training images when it was not asked for, else None.
    """

    reference: Dataset
    split: str
    floor: Dataset | None
    note: str | None = None

    def key(self, dataset: Dataset) -> str:
        """The reference-statistics cache key of ``dataset`` (source, name, split, size, data)."""
        return cache_key(dataset, self.split if dataset is self.reference else "train")


def cache_key(dataset: Dataset, split: str = "train") -> str:
    """The reference-statistics cache key of ``dataset``'s images of ``split`` (source, name, split, size, data)."""
    return f"{dataset.source}:{dataset.name}:{split}:{dataset.image_size}:{dataset.fingerprint}"


def real_images(dataset: str, *, image_size: int, choice: str | None = None,
                training: Dataset | None = None) -> RealImages:
    """Load the reference and floor images of ``dataset`` (a ``--dataset`` spelling).

    choice: "test", "train", or None (the held-out split where the source has
    one, else the training images). ``training``: the run's training images,
    reused when the reference is them (the floor always uses every training
    image). Raises ConfigError naming the splits that exist when ``choice``
    asks for one the dataset lacks.
    """
    if choice is not None and choice not in REFERENCES:
        raise ConfigError(f"--eval-reference {choice!r} is not a split; use one of {', '.join(REFERENCES)}.")
    full_training = load_dataset(dataset, image_size=image_size)
    held_out = HELD_OUT.get(full_training.source)
    if choice == "test" and held_out is None:
        raise ConfigError(f"--eval-reference test: dataset {full_training.spec} has no held-out split (its "
                          f"splits: train); use --eval-reference train.")
    if choice == "train" or held_out is None:
        note = None if choice == "train" else (
            f"{full_training.spec} has no held-out split: samples are scored against the training images "
            f"(a generator that copies them scores best), and there is no floor")
        return RealImages(training if training is not None else full_training, "train", None, note)
    reference = load_dataset(dataset, image_size=image_size, split=held_out)
    return RealImages(reference, held_out, full_training)


def run_evaluator(dataset: str, *, training: Dataset, n_samples: int, reference: str | None = None,
                  backbone: str = "auto", inception_path: str | None = None, fid_infinity: bool = False,
                  train_backbone: bool = False, tracking_uri: str | None = None, log=print):
    """Build the evaluator of a run on ``dataset`` whose training images are ``training``.

    Chooses the reference (``real_images``), says in ``log`` when it is the
    training images, and adds the floor when the reference is held out.
    ``train_backbone``: train the offline backbone first when none is found
    (``backbone_training.ensure_backbone``; its training is logged to
    ``tracking_uri``). Returns a ``harness.measure.evaluator.Evaluator``.
    Raises ConfigError for a missing split, backbone or too many samples.
    """
    from harness.measure.backbone_training import ensure_backbone
    from harness.measure.evaluator import make_evaluator

    real = real_images(dataset, image_size=training.image_size, choice=reference, training=training)
    if real.note:
        log(f"note: {real.note}")
    if train_backbone:
        ensure_backbone(backbone, inception_path=inception_path, log=log,
                        **({"tracking_uri": tracking_uri} if tracking_uri else {}))
    return make_evaluator(
        dataset_key=real.key(real.reference), reference_images=real.reference.images, n_samples=n_samples,
        backbone=backbone, inception_path=inception_path, log=log, reference_split=real.split,
        floor_images=None if real.floor is None else real.floor.images,
        floor_key=None if real.floor is None else real.key(real.floor), with_fid_infinity=fid_infinity)
