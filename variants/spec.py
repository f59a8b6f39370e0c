"""The variant spec: one frozen dataclass that describes a DCGAN variant as data.

The builders in ``variants.builders`` read nothing but this spec, so two runs
with equal specs train the same architecture with the same optimiser settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from harness.errors import ConfigError, unknown_name

# The named axes a variant is compared over, with their allowed values.
AXES: dict[str, tuple[Any, ...]] = {
    "batchnorm": ("none", "generator", "discriminator", "both"),
    "dropout": ("none", "head", "blocks"),
    "kernel": (3, 4),
    "g_activation": ("leaky_relu", "relu"),
    "leaky_relu": ("layer", "inline"),
    "d_update": ("split", "mixed"),
}


@dataclass(frozen=True)
class DBlock:
    """One discriminator convolution: filters, stride and (optionally) its own kernel.

    ``kernel=None`` means "the variant's kernel axis"; a preset that reproduces a
    notebook with a fixed first kernel (e.g. 5x5) sets it explicitly.
    """

    filters: int
    stride: int = 2
    kernel: int | None = None


@dataclass(frozen=True)
class VariantSpec:
    """Everything that distinguishes one GAN variant from another.

    Axes (see ``AXES``) are what reports compare; the remaining fields fix the
    architecture family and the optimisers. Images are ``image_size`` square
    with ``channels`` channels; the generator starts from a ``base`` x ``base``
    map and doubles it once per entry of ``g_filters``.

    Two axes shape the hidden activations, and each changes one thing only:

    - ``g_activation`` is the *function* after the generator's Dense
      projection and after each of its hidden transposed convolutions:
      ``"leaky_relu"`` (LeakyReLU with ``leaky_slope``) or ``"relu"``. The
      discriminator always uses LeakyReLU. ``g_dense_activation``, when set,
      overrides the function after the Dense alone (``cifar_bn`` has ReLU
      there and LeakyReLU after its convolutions, as published).
    - ``leaky_relu`` is the *form* of every hidden activation in both
      networks, ReLU included: ``"layer"`` (a separate ``LeakyReLU``/``ReLU``
      layer, BatchNorm before it unless ``bn_after_activation``) or
      ``"inline"`` (``activation=`` on the convolution, so BatchNorm can
      only follow it). The Dense projection's activation is a layer in both
      forms, because the Reshape sits between it and the Dense. The axis is
      named after LeakyReLU, which is all D uses.

    So switching ``g_activation`` never moves a BatchNorm, and switching
    ``leaky_relu`` never changes a function.
    """

    name: str
    # --- the compared axes -------------------------------------------------
    batchnorm: str = "none"
    dropout: str = "head"
    kernel: int = 3
    g_activation: str = "leaky_relu"
    leaky_relu: str = "layer"
    d_update: str = "split"
    # --- architecture family ----------------------------------------------
    image_size: int = 32
    channels: int = 3
    latent_dim: int = 100
    g_dense_filters: int = 256
    g_dense_activation: str | None = None  # None: as g_activation; else "leaky_relu" or "relu"
    g_filters: tuple[int, ...] = (128, 128, 128)
    g_out_kernel: int = 3
    g_out_transpose: bool = False  # last layer Conv2DTranspose (stride 2) instead of Conv2D
    bn_momentum: float = 0.99
    bn_after_activation: bool = False  # cifar_bn places BatchNorm after LeakyReLU
    bn_on_dense: bool = False  # BatchNorm also after the generator's Dense projection
    d_blocks: tuple[DBlock, ...] = (DBlock(64, 1), DBlock(128), DBlock(128), DBlock(256))
    dropout_rate: float = 0.4
    leaky_slope: float = 0.2
    # --- optimisation -------------------------------------------------------
    g_lr: float = 2e-4
    g_beta_1: float = 0.5
    d_lr: float = 2e-4
    d_beta_1: float = 0.5
    label_smoothing: float = 0.0
    source: str = field(default="", compare=False)  # where a preset comes from

    def __post_init__(self) -> None:
        for axis, allowed in AXES.items():
            value = getattr(self, axis)
            if value not in allowed:
                raise ConfigError(
                    f"variant {self.name!r}: {axis}={value!r} is not one of "
                    f"{', '.join(map(str, allowed))}."
                )
        for key in ("g_lr", "d_lr"):
            if not 0 < getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)} must be in (0, 1), e.g. 2e-4.")
        for key in ("g_beta_1", "d_beta_1", "label_smoothing"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)} must be in [0, 1).")
        if not 0 <= self.dropout_rate < 1:
            raise ConfigError(f"dropout_rate={self.dropout_rate} must be in [0, 1).")
        if self.g_dense_activation not in (None, *AXES["g_activation"]):
            raise ConfigError(
                f"variant {self.name!r}: g_dense_activation={self.g_dense_activation!r} is not one of "
                f"None (as g_activation), {', '.join(AXES['g_activation'])}."
            )
        if self.leaky_relu == "inline" and self.leaky_slope != 0.2:
            raise ConfigError(
                f"variant {self.name!r}: inline LeakyReLU uses Keras's 'leaky_relu' (slope 0.2); "
                f"leaky_slope={self.leaky_slope} needs leaky_relu='layer'."
            )
        if self.latent_dim < 1:
            raise ConfigError(f"latent_dim={self.latent_dim} must be at least 1.")
        if self.image_size % self.upsampling != 0:
            raise ConfigError(
                f"variant {self.name!r}: image size {self.image_size} is not divisible by "
                f"{self.upsampling} (the generator's {self.upsampling}x up-sampling); "
                "use --image-size 28, 32 or 64."
            )

    @property
    def upsampling(self) -> int:
        """Total up-sampling factor of the generator."""
        return 2 ** (len(self.g_filters) + int(self.g_out_transpose))

    @property
    def base(self) -> int:
        """Side of the generator's first feature map."""
        return self.image_size // self.upsampling

    @property
    def dense_activation(self) -> str:
        """The activation after the generator's Dense projection."""
        return self.g_dense_activation or self.g_activation

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)

    def axes(self) -> dict[str, Any]:
        """The compared axes and their values."""
        return {axis: getattr(self, axis) for axis in AXES}

    def replace(self, **changes: Any) -> VariantSpec:
        """A copy with ``changes`` applied; unknown fields or wrong types are errors."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in fields:
                raise unknown_name("variant field", key, fields)
            current = getattr(self, key)
            if value is None and fields[key].default is None:
                continue  # None is that field's "not set", e.g. g_dense_activation
            if isinstance(current, bool) != isinstance(value, bool) or (
                isinstance(current, (int, float, str))
                and not isinstance(current, bool)
                and not isinstance(value, type(current))
                and not (isinstance(current, float) and isinstance(value, int))
            ):
                raise ConfigError(
                    f"variant field {key!r} takes a {type(current).__name__}, got {value!r}."
                )
        return dataclasses.replace(self, **changes)

    def scaled(self, width: float) -> VariantSpec:
        """The same variant with every layer width multiplied by ``width`` (for quick tests).

        Raises ConfigError when a layer would round to no filters at all.
        """
        narrowest = min(self.g_dense_filters, *self.g_filters, *(b.filters for b in self.d_blocks))
        if round(narrowest * width) < 1:
            raise ConfigError(f"--width {width:g} rounds the narrowest layer ({narrowest} filters) to no "
                              f"filters; use at least {0.5 / narrowest:.2g}.")

        def w(n: int) -> int:
            return round(n * width)

        return dataclasses.replace(
            self,
            g_dense_filters=w(self.g_dense_filters),
            g_filters=tuple(w(f) for f in self.g_filters),
            d_blocks=tuple(dataclasses.replace(b, filters=w(b.filters)) for b in self.d_blocks),
        )

    def for_image(self, image_size: int, channels: int) -> VariantSpec:
        """Adapt the family to another image size or channel count.

        The generator keeps its first map size when it can (4x4 for the DCGAN
        family) and gains or loses up-sampling blocks: 64 px adds one block
        (repeating the last width), 28 px starts from 7x7 with two blocks.
        """
        if (image_size, channels) == (self.image_size, self.channels):
            return self
        g_filters = list(self.g_filters)
        blocks_needed = _blocks_for(image_size, self.base, int(self.g_out_transpose))
        while len(g_filters) < blocks_needed:
            g_filters.append(g_filters[-1])
        while len(g_filters) > blocks_needed and len(g_filters) > 1:
            g_filters.pop()
        return self.replace(image_size=image_size, channels=channels, g_filters=tuple(g_filters))

    def to_params(self) -> dict[str, str]:
        """Flat string params for tracking: every axis and hyperparameter."""
        params: dict[str, str] = {}
        for f in dataclasses.fields(self):
            if f.name == "source":  # documentation, not a hyperparameter
                continue
            value = getattr(self, f.name)
            if f.name == "g_dense_activation":
                # The function the network has, not "None": what a run records is
                # what was built, and runs logged before g_activation existed
                # recorded it this way.
                value = self.dense_activation
            elif f.name == "d_blocks":
                value = ",".join(f"{b.filters}/s{b.stride}" + (f"/k{b.kernel}" if b.kernel else "") for b in value)
            elif isinstance(value, tuple):
                value = ",".join(map(str, value))
            params[f.name] = str(value)
        return params


def _blocks_for(image_size: int, base: int, extra: int) -> int:
    """Number of stride-2 generator blocks taking ``base`` to ``image_size``."""
    for start in (base, 4, 7, 8):
        size, blocks = start, 0
        while size * 2 ** extra < image_size:
            size *= 2
            blocks += 1
        if size * 2 ** extra == image_size:
            return blocks
    raise ConfigError(f"image size {image_size} cannot be reached by doubling; use 28, 32 or 64.")
