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
from harness.flags import at_least, between, learning_rate, longest, positive, setting
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
EVAL_REFERENCES = ("test", "train")
EVAL_CURVE_SAMPLES = 1000  # generated images of each evaluation before the last (harness.measure.evaluator)
EVALUATIONS = 5  # the default --eval-every gives at least this many evaluations per run
XLA = ("auto", "on", "off")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")  # see harness/train/precision.py
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

    variant: str = setting(help="a preset or grammar name (see `harness variants`)", kind=str, role="cell notebook")
    dataset: str = setting(help="e.g. horses, cifar10:horses, folder:/path/to/eagles", kind=str,
                           role="cell unlogged notebook")  # the data's params and the `dataset` tag
    epochs: int | None = setting(None, kind=int, check=positive, role="result searched notebook",
                                 help="default: the class's published epochs (horses 50, ...)")
    batch_size: int = setting(128, check=positive, help="images per batch", role="searched notebook")
    seed: int = setting(0, check=between(0, SEED_LIMIT, high_open=True), role="cell",
                        help="seeds the weights, the noise and the data order")
    max_images: int | None = setting(None, kind=int, check=positive, help="use only the first N training images",
                                     role="notebook")
    image_size: int | None = setting(None, kind=int, choices=IMAGE_SIZES, role="unlogged",  # the spec's
                                     help="image side in pixels (default: the variant's own, 32 for most)")
    # --- optimisation: None keeps the variant's value (the spec's params log what is used) ---
    g_lr: float | None = setting(None, kind=float, check=learning_rate, group=_OPTIMISATION, role="searched unlogged",
                                 help="generator learning rate")
    d_lr: float | None = setting(None, kind=float, check=learning_rate, group=_OPTIMISATION, role="searched unlogged",
                                 help="discriminator learning rate")
    g_beta_1: float | None = setting(None, kind=float, check=between(0, 1, high_open=True), flag="--g-beta1",
                                     group=_OPTIMISATION, help="generator Adam beta_1", role="searched unlogged")
    d_beta_1: float | None = setting(None, kind=float, check=between(0, 1, high_open=True), flag="--d-beta1",
                                     group=_OPTIMISATION, help="discriminator Adam beta_1", role="searched unlogged")
    label_smoothing: float | None = setting(None, kind=float, check=between(0, 1, high_open=True),
                                            group=_OPTIMISATION, help="one-sided: real labels become 1 - s",
                                            role="searched unlogged")
    width: float = setting(1.0, check=between(0, 4), group=_OPTIMISATION, role="notebook",
                           help="multiply every layer width (quick looks and tests use < 1)")
    # --- evaluation ---------------------------------------------------------------------
    eval_every: int | None = setting(None, kind=int, check=at_least(0), group=_EVALUATION, role="result",
                                     help="evaluate every K epochs and at the end (0: never; default: about 5 "
                                          "times, every epochs/5); KID and precision/recall/density/coverage "
                                          f"at {EVAL_CURVE_SAMPLES} samples, FID and IS at the end")
    eval_samples: int = setting(5000, check=at_least(10), group=_EVALUATION, role="result notebook",
                                help="generated images per evaluation")
    # The evaluator logs what these two chose as eval_reference and eval_fid_infinity.
    eval_reference: str | None = setting(None, kind=str, choices=EVAL_REFERENCES, group=_EVALUATION,
                                         role="result unlogged",
                                         help="the real images samples are scored against (default: the "
                                              "held-out test split where the dataset has one, else train)")
    fid_infinity: bool = setting(False, group=_EVALUATION, role="result unlogged",
                                 help="also FID∞ at the last evaluation (FID at 10 sample sizes, extrapolated "
                                      "to infinitely many)")
    # The evaluator's params name the backbone actually used, so these two are not logged.
    backbone: str = setting("auto", choices=BACKBONES, group=_EVALUATION, role="result unlogged notebook",
                            help="feature network: auto = Inception when its graph is found, else the "
                                 "offline CIFAR-10 classifier")
    inception: str | None = setting(None, kind=str, group=_EVALUATION, metavar="PATH", role="result unlogged notebook",
                                    help="classify_image_graph_def.pb or inception-2015-12-05.tgz")
    # --- tracking -------------------------------------------------------------------------
    tracking_uri: str = setting(DEFAULT_TRACKING_URI, group=_TRACKING, role="per_machine unlogged",  # may hold a password
                                help="MLflow tracking store (artifacts under ./mlruns)")
    experiment: str | None = setting(None, kind=str, check=longest(EXPERIMENT_NAME_LIMIT), group=_TRACKING,
                                     role="result unlogged",  # the run is in it
                                     help="MLflow experiment (default: the dataset's class name)")
    run_name: str | None = setting(None, kind=str, check=longest(EXPERIMENT_NAME_LIMIT), group=_TRACKING, role="per_run",
                                   help="MLflow run name (default: VARIANT-CLASS-sSEED)")
    tags: dict[str, str] = setting(help="extra MLflow tags", factory=dict, cli=False, role="per_run")
    # --- checkpoints, output and speed ----------------------------------------------------
    checkpoint_dir: str = setting("checkpoints", group=_SPEED, metavar="DIR", role="per_machine",
                                  help="where checkpoints are written, one folder per run")
    keep_checkpoints: int = setting(2, check=positive, group=_SPEED, help="checkpoints kept per run",
                                    role="speed")
    clean_checkpoints: bool = setting(True, group=_SPEED, role="speed",
                                      help="delete a FINISHED run's local checkpoints once its last one is "
                                           "logged to MLflow (--resume fetches it back); --no-clean-checkpoints "
                                           "keeps them")
    sample_every: int = setting(1, check=positive, group=_SPEED, role="speed",
                                help="sample grid every K epochs (and the last)")
    progress: bool | None = setting(None, kind=bool, group=_SPEED, role="per_machine unlogged",
                                    help="a progress bar per epoch (default: only on a terminal)")
    xla: str = setting("auto", choices=XLA, group=_SPEED, role="speed notebook",
                       help="XLA-compile the step (auto: on GPUs only)")
    steps_per_execution: int = setting(1, check=positive, group=_SPEED, role="speed",
                                       help="training steps per compiled call")
    precision: str = setting("auto", choices=PRECISIONS, group=_SPEED, role="speed notebook",
                             help="the networks' arithmetic: auto = bfloat16 where this machine trains it "
                                  "faster and the variant passed the float32-vs-bfloat16 equivalence study "
                                  "(benchmarks/precision_equivalence.json), else float32; float16 (loss-scaled) "
                                  "is for GPUs")

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
        epochs = self.epochs or DEFAULT_EPOCHS.get(self.class_name, FALLBACK_EPOCHS)
        return dataclasses.replace(
            self,
            epochs=epochs,
            eval_every=self.eval_every if self.eval_every is not None else max(1, epochs // EVALUATIONS),
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
        return {k: v for k, v in self.to_dict().items() if k in TRAINING}

    def identifying_fields(self) -> dict[str, Any]:
        """The fields that say what a result is (a campaign cell's settings; a change is a new result)."""
        return {k: v for k, v in self.to_dict().items() if k in IDENTIFYING}


# --- the field sets, derived from each field's roles (harness/flags.py: ROLES) -----------
_ROLES = flags.roles(RunConfig)


def _without(*words: str) -> tuple[str, ...]:
    return tuple(name for name, roles in _ROLES.items() if not roles & set(words))


def _with(*words: str) -> tuple[str, ...]:
    return tuple(name for name, roles in _ROLES.items() if roles & set(words))


LOGGED = _without("unlogged", "per_run")  # a run's params (beside the spec's and the data's)
IDENTIFYING = _without("speed", "per_machine", "per_run")  # a campaign cell's settings and their hash
TRAINING = tuple(n for n in IDENTIFYING if "result" not in _ROLES[n])  # resuming refuses a change
NOT_IN_PLAN = _with("cell", "per_machine", "per_run")  # a campaign plan may not set these
NOT_STUDY_FLAGS = _with("searched", "per_run")  # a study searches these or names its runs itself
SEARCHED = _with("searched")
NOTEBOOK = _with("notebook")  # what the notebooks' loop takes too, in declaration order

