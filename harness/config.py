"""The run config: one dataclass for everything a training run needs.

It is resolved once (defaults filled in, values checked), logged as params,
and stored with every checkpoint so that a resumed run can refuse a changed
configuration.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from harness.errors import ConfigError

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

# Spec fields a run (or a study trial) may override on top of the variant.
SPEC_OVERRIDES = ("g_lr", "d_lr", "g_beta_1", "d_beta_1", "label_smoothing")


@dataclass(frozen=True)
class RunConfig:
    """A training run: which variant on which data, for how long, logged where."""

    variant: str
    dataset: str
    epochs: int | None = None  # None: the class default (DEFAULT_EPOCHS)
    batch_size: int = 128
    seed: int = 0
    max_images: int | None = None
    image_size: int = 32
    tracking_uri: str = DEFAULT_TRACKING_URI
    experiment: str | None = None  # None: the dataset name
    run_name: str | None = None
    checkpoint_dir: str = "checkpoints"
    keep_checkpoints: int = 2
    width: float = 1.0  # multiplies every layer width (tests and quick looks use < 1)
    overrides: dict[str, Any] = field(default_factory=dict)  # spec fields, see SPEC_OVERRIDES
    # Evaluation (FID/KID/IS); 0 disables it.
    eval_every: int = 0
    eval_samples: int = 5000
    backbone: str = "auto"
    inception: str | None = None
    # Speed.
    xla: str = "auto"  # auto | on | off
    steps_per_execution: int = 1
    progress: bool = True
    sample_every: int = 1  # sample grid every K epochs (the last epoch always)
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def positive(name: str, value: Any, hint: str) -> None:
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name}={value!r} must be a positive whole number; {hint}.")

        positive("--epochs", self.epochs, "e.g. --epochs 20")
        positive("--batch-size", self.batch_size, "e.g. --batch-size 128")
        positive("--max-images", self.max_images, "e.g. --max-images 512")
        positive("--steps-per-execution", self.steps_per_execution, "1 is the default")
        positive("--keep-checkpoints", self.keep_checkpoints, "2 is the default")
        positive("--sample-every", self.sample_every, "1 is the default")
        positive("--eval-samples", self.eval_samples, "e.g. --eval-samples 5000")
        if self.eval_every < 0:
            raise ConfigError(f"--eval-every={self.eval_every} must be 0 (off) or positive.")
        if self.image_size not in (28, 32, 64):
            raise ConfigError(f"--image-size={self.image_size} must be 28, 32 or 64.")
        if self.xla not in ("auto", "on", "off"):
            raise ConfigError(f"--xla={self.xla!r} must be auto, on or off.")
        if not 0 < self.width <= 4:
            raise ConfigError(f"--width={self.width} must be in (0, 4].")
        unknown = set(self.overrides) - set(SPEC_OVERRIDES)
        if unknown:
            raise ConfigError(
                f"cannot override {', '.join(sorted(unknown))}; overridable: {', '.join(SPEC_OVERRIDES)}."
            )

    @property
    def class_name(self) -> str:
        """The class part of the dataset name (``animals10:horses`` -> ``horses``)."""
        name = self.dataset.rstrip("/").split(":")[-1]
        return name.replace("\\", "/").rstrip("/").split("/")[-1]

    def resolved(self) -> RunConfig:
        """A copy with the defaults that depend on other fields filled in."""
        return dataclasses.replace(
            self,
            epochs=self.epochs or DEFAULT_EPOCHS.get(self.class_name, FALLBACK_EPOCHS),
            experiment=self.experiment or self.class_name,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Rebuild a config; unknown keys are an error (a config from another version)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown run config keys: {', '.join(sorted(unknown))}.")
        return cls(**data)

    def training_fields(self) -> dict[str, Any]:
        """The fields that change what is trained (resuming refuses a change in these)."""
        ignore = {"tracking_uri", "experiment", "run_name", "checkpoint_dir", "keep_checkpoints",
                  "progress", "tags", "epochs", "xla", "steps_per_execution", "eval_every",
                  "eval_samples", "backbone", "inception", "sample_every"}
        return {k: v for k, v in self.to_dict().items() if k not in ignore}
