"""The run config: one dataclass for everything a training run needs, written once.

Each field is a ``setting`` (harness/flags.py) carrying its flag, help, type,
choices and check: the ``run``, ``study`` and ``campaign`` commands derive
their flags from it, campaign plans and stored configs are read through it,
and ``__post_init__`` checks it. The config is resolved once (defaults that
depend on other fields filled in), logged as params, and stored with every
checkpoint so that a resumed run can refuse a changed configuration.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from harness import flags
from harness.data.registry import class_name
from harness.flags import at_least, between, longest, positive, setting
from variants import resolve

# Epochs per class from the published animal study; every other class trains 50.
DEFAULT_EPOCHS: dict[str, int] = {
    "butterflies": 40,
    "spiders": 30,
    "elephants": 20,
    "chickens": 50,
    "horses": 50,
    "cows": 40,
    "eagles": 30,
}
FALLBACK_EPOCHS = 50
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
BACKBONES = ("auto", "inception", "cifar10_classifier")
XLA = ("auto", "on", "off")
IMAGE_SIZES = (28, 32, 64)
EXPERIMENT_NAME_LIMIT = 500  # MLflow's limit on an experiment name
SEED_LIMIT = 2**32  # NumPy's and Keras's seeds are 32-bit

# Spec fields a run (or a study trial) may set on top of the variant.
SPEC_OVERRIDES = ("g_lr", "d_lr", "g_beta_1", "d_beta_1", "label_smoothing")

_OPTIMISATION = "optimisation (override the variant's)"
_EVALUATION = "evaluation (FID/KID/IS)"
_SPEED = "checkpoints, output and speed"
_TRACKING = "tracking"


@dataclass(frozen=True)
class RunConfig:
    """A training run: which variant on which data, for how long, logged where."""

    variant: str = setting(help="a preset or grammar name (see `harness variants`)", kind=str)
    dataset: str = setting(help="e.g. horses, cifar10:horses, folder:/path/to/eagles", kind=str)
    epochs: int | None = setting(None, kind=int, check=positive,
                                 help="default: the class's published epochs (horses 50, ...)")
    batch_size: int = setting(128, check=positive, help="images per batch")
    seed: int = setting(0, check=between(0, SEED_LIMIT, high_open=True),
                        help="seeds the weights, the noise and the data order")
    max_images: int | None = setting(None, kind=int, check=positive, help="use only the first N training images")
    image_size: int | None = setting(None, kind=int, choices=IMAGE_SIZES,
                                     help="image side in pixels (default: the variant's own, 32 for most)")
    # --- optimisation: None keeps the variant's value -------------------------------
    g_lr: float | None = setting(None, kind=float, check=positive, group=_OPTIMISATION,
                                 help="generator learning rate")
    d_lr: float | None = setting(None, kind=float, check=positive, group=_OPTIMISATION,
                                 help="discriminator learning rate")
    g_beta_1: float | None = setting(None, kind=float, check=between(0, 1, high_open=True), flag="--g-beta1",
                                     group=_OPTIMISATION, help="generator Adam beta_1")
    d_beta_1: float | None = setting(None, kind=float, check=between(0, 1, high_open=True), flag="--d-beta1",
                                     group=_OPTIMISATION, help="discriminator Adam beta_1")
    label_smoothing: float | None = setting(None, kind=float, check=between(0, 1, high_open=True),
                                            group=_OPTIMISATION, help="one-sided: real labels become 1 - s")
    width: float = setting(1.0, check=between(0, 4), group=_OPTIMISATION,
                           help="multiply every layer width (quick looks and tests use < 1)")
    # --- evaluation ---------------------------------------------------------------------
    eval_every: int = setting(0, check=at_least(0), group=_EVALUATION,
                              help="FID/KID/IS every K epochs and at the end (0: never)")
    eval_samples: int = setting(5000, check=at_least(10), group=_EVALUATION,
                                help="generated images per evaluation")
    backbone: str = setting("auto", choices=BACKBONES, group=_EVALUATION,
                            help="feature network: auto = Inception when its graph is found, else the "
                                 "offline CIFAR-10 classifier")
    inception: str | None = setting(None, kind=str, group=_EVALUATION, metavar="PATH",
                                    help="classify_image_graph_def.pb or inception-2015-12-05.tgz")
    # --- tracking -------------------------------------------------------------------------
    tracking_uri: str = setting(DEFAULT_TRACKING_URI, group=_TRACKING,
                                help="MLflow tracking store (artifacts under ./mlruns)")
    experiment: str | None = setting(None, kind=str, check=longest(EXPERIMENT_NAME_LIMIT), group=_TRACKING,
                                     help="MLflow experiment (default: the dataset's class name)")
    run_name: str | None = setting(None, kind=str, check=longest(EXPERIMENT_NAME_LIMIT), group=_TRACKING,
                                   help="MLflow run name (default: VARIANT-CLASS-sSEED)")
    tags: dict[str, str] = setting(help="extra MLflow tags", factory=dict, cli=False)
    # --- checkpoints, output and speed ----------------------------------------------------
    checkpoint_dir: str = setting("checkpoints", group=_SPEED, metavar="DIR",
                                  help="where checkpoints are written, one folder per run")
    keep_checkpoints: int = setting(2, check=positive, group=_SPEED, help="checkpoints kept per run")
    clean_checkpoints: bool = setting(True, group=_SPEED,
                                      help="delete a FINISHED run's local checkpoints once its last one is "
                                           "logged to MLflow (--resume fetches it back); --no-clean-checkpoints "
                                           "keeps them")
    sample_every: int = setting(1, check=positive, group=_SPEED, help="sample grid every K epochs (and the last)")
    progress: bool | None = setting(None, kind=bool, group=_SPEED,
                                    help="a progress bar per epoch (default: only on a terminal)")
    xla: str = setting("auto", choices=XLA, group=_SPEED,
                       help="XLA-compile the step (auto: on GPUs only)")
    steps_per_execution: int = setting(1, check=positive, group=_SPEED, help="training steps per compiled call")

    def __post_init__(self) -> None:
        flags.validate(self)
        # Bad names and widths fail here, each naming what is valid, before anything loads.
        spec = resolve(self.variant)
        class_name(self.dataset)
        if self.width != 1.0:
            spec.scaled(self.width)

    @property
    def class_name(self) -> str:
        """The class the dataset names (``cifar10:horses@/data`` and ``animals10:cavallo`` -> ``horses``)."""
        return class_name(self.dataset)

    @property
    def overrides(self) -> dict[str, float]:
        """The spec fields this run sets on top of the variant (``VariantSpec.replace(**overrides)``)."""
        return {k: getattr(self, k) for k in SPEC_OVERRIDES if getattr(self, k) is not None}

    def resolved(self) -> RunConfig:
        """A copy with the defaults that depend on other fields filled in."""
        return dataclasses.replace(
            self,
            epochs=self.epochs or DEFAULT_EPOCHS.get(self.class_name, FALLBACK_EPOCHS),
            experiment=self.experiment or self.class_name,
            image_size=self.image_size or resolve(self.variant).image_size,
        )

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes``; unknown fields and bad values are errors."""
        return flags.build(type(self), {**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> RunConfig:
        """Rebuild a config; unknown keys and wrong types are errors naming the key.

        Configs stored before the optimiser settings became fields hold them
        in ``overrides``; they are read as the fields they are.
        """
        data = dict(data)
        data.update(data.pop("overrides", None) or {})
        return flags.build(cls, data, where)

    def training_fields(self) -> dict[str, Any]:
        """The fields that change what is trained (resuming refuses a change in these)."""
        ignore = {"tracking_uri", "experiment", "run_name", "checkpoint_dir", "keep_checkpoints",
                  "clean_checkpoints", "progress", "tags", "epochs", "xla", "steps_per_execution", "eval_every",
                  "eval_samples", "backbone", "inception", "sample_every"}
        return {k: v for k, v in self.to_dict().items() if k not in ignore}

