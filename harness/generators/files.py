"""Generator files made outside the harness (the notebooks' ``.h5``, ``.keras``): load and check.

``load(path)`` returns an ``ExternalGenerator`` whose ``model`` maps noise to
images in [-1, 1], the harness's convention, or raises ``ConfigError`` naming
the file and what is wrong with it: missing, a folder, neither HDF5 nor a
Keras archive, named with the other format's suffix, weights without a model,
damaged, holding a ``Lambda`` layer, or not shaped like a generator (one input
``(None, latent)``, one output ``(None, S, S, C)`` with S in 28, 32, 64 and C
1 or 3). Nothing in the file runs as code:

- the model's configuration is read and refused if any layer is a ``Lambda``
  (or tf.keras's ``TFOpLambda``/``SlicingOpLambda``), before Keras sees it: a
  generator needs none, and the refusal does not depend on Keras's version;
- Keras loads it with ``compile=False, safe_mode=True``. For a legacy
  ``.h5`` Keras 3 applies the same safe mode while it rebuilds the layers (a
  ``Lambda`` whose function is Python bytecode is refused); the weights are
  plain HDF5 arrays.

Files from tf.keras 2.x (the notebooks' ``.h5``) hold two arguments Keras 3
refuses or renames (``_from_keras2``); they are fixed in a temporary copy.

Output range: the harness's generators end in ``tanh`` (images in [-1, 1],
``uint8 = round((x + 1) * 127.5)``). Notebook generators end in ``tanh`` or
``sigmoid`` (images in [0, 1], ``uint8 = round(x * 255)``). The range is read
from the activation that makes the output (looking through Reshape-like
layers); a sigmoid generator is wrapped with ``Rescaling(2, offset=-1)`` so
that everything downstream (FID/KID/IS, sample grids) reads it the same way.
When the activation is neither, ``output_range="tanh"`` or ``"sigmoid"``
says which it is.

This module imports neither TensorFlow, h5py nor MLflow at the top: the CLI
reads its constants to build its flags. ``harness.generators.file_scoring``
scores a file into MLflow.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.checksums import md5_of
from harness.config import IMAGE_SIZES
from harness.errors import ConfigError, describe_os_error

OUTPUT_RANGES = ("auto", "tanh", "sigmoid")
CHANNELS = (1, 3)
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
SUFFIXES = {".h5": "h5", ".hdf5": "h5", ".keras": "keras"}
# Layers that hold Python code rather than a configuration.
UNSAFE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")
# Layers that only move values around: the output's range is that of the layer before.
_SHAPE_ONLY = ("Reshape", "Flatten", "Permute", "Cropping2D", "Identity", "InputLayer")
_RANGE_OF = {"tanh": "tanh", "sigmoid": "sigmoid", "hard_sigmoid": "sigmoid", "hard_tanh": "tanh"}


@dataclass(frozen=True)
class ExternalGenerator:
    """A checked generator file. ``model`` outputs images in [-1, 1] (see the module docstring)."""

    path: Path
    model: Any  # keras.Model
    format: str  # "h5" or "keras"
    md5: str
    latent_dim: int
    image_size: int
    channels: int
    output_range: str  # "tanh" or "sigmoid": how the file's own output was read

    def params(self) -> dict[str, str]:
        """What identifies the file and how it was read, as MLflow params."""
        return {"external_file": self.path.name, "external_md5": self.md5, "external_format": self.format,
                "external_output_range": self.output_range, "latent_dim": str(self.latent_dim),
                "image_size": str(self.image_size), "channels": str(self.channels)}


# --- loading and checking ------------------------------------------------------------
def load(path: str | Path, output_range: str = "auto") -> ExternalGenerator:
    """Load and check the generator file ``path`` (.h5 or .keras); see the module docstring.

    ``output_range``: "auto" (read it from the output activation), "tanh"
    (the file's images are in [-1, 1]) or "sigmoid" ([0, 1]).
    """
    if output_range not in OUTPUT_RANGES:
        raise ConfigError(f"--output-range {output_range!r} must be one of {', '.join(OUTPUT_RANGES)}.")
    path = Path(path)
    fmt = _format(path)
    config = _model_config(path, fmt)
    _refuse_code(path, config)
    keras2_fixed = _from_keras2(path, config) if fmt == "h5" else None
    # TensorFlow loads only once the cheap checks passed (a wrong path fails at once).
    import keras

    try:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            # Keras warns about Keras 2 arguments it converts itself (input_shape, ...): nothing to act on.
            warnings.simplefilter("ignore")
            source = path
            if keras2_fixed is not None:  # a copy: the user's file is never changed
                source = Path(tmp) / path.name
                shutil.copyfile(path, source)
                import h5py  # here, not at the top: see the module docstring

                with h5py.File(source, "r+") as f:
                    f.attrs["model_config"] = json.dumps(keras2_fixed).encode("utf-8")
            model = keras.saving.load_model(source, compile=False, safe_mode=True)
    except Exception as exc:  # whatever Keras or h5py raise, the file is what is wrong
        if "safe_mode" in str(exc):  # Keras refuses to run code stored in the file
            raise ConfigError(f"--generator {str(path)!r} was refused for safety: it holds code (e.g. a Lambda "
                              "layer) that Keras's safe mode does not run. Rebuild the generator from standard "
                              "layers and save it again.") from None
        raise ConfigError(f"--generator {str(path)!r} does not load as a Keras model ({_first_line(exc)}); "
                          "it may be damaged or need layers Keras does not have. Save the generator again "
                          "with `model.save('generator.keras')`.") from None
    latent, size, channels = _check_shapes(path, model)
    found = _output_activation(model)
    if output_range == "auto":
        if found not in _RANGE_OF:
            raise ConfigError(
                f"--generator {str(path)!r}: its output comes from a {found or 'linear'!r} activation, so the "
                "range of its images is unknown; pass --output-range tanh (images in [-1, 1]) or "
                "--output-range sigmoid (images in [0, 1]).")
        output_range = _RANGE_OF[found]
    if output_range == "sigmoid":
        model = _to_tanh_range(model, latent)
    return ExternalGenerator(path=path, model=model, format=fmt, md5=md5_of(path), latent_dim=latent,
                             image_size=size, channels=channels, output_range=output_range)


def one_source(generator: str | None, **others: Any) -> None:
    """Refuse ``--generator`` given together with another way of naming a generator.

    ``others`` maps flag names (``run_id``, ``model``, ``best``) to their values.
    """
    given = [name for name, value in others.items() if value]
    if generator and given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ConfigError(f"--generator {generator!r} names a file, and {flags} a logged generator; "
                          "give one of them.")


def _format(path: Path) -> str:
    """'h5' or 'keras', from the file's first bytes, checked against its suffix."""
    shown = repr(str(path))
    if path.is_dir():
        hint = (" It is a TensorFlow SavedModel (for TF Serving and TFLite): use the .keras or .h5 file "
                "instead, e.g. `python -m harness export --format keras`." if (path / "saved_model.pb").exists()
                else "")
        raise ConfigError(f"--generator {shown} is a folder; give a .h5 or .keras file.{hint}")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ConfigError(f"--generator: {describe_os_error(exc)}") from None
    found = "h5" if head == HDF5_MAGIC else "keras" if head.startswith(ZIP_MAGIC) else None
    named = SUFFIXES.get(path.suffix.lower())
    if found is None:
        what = "is empty" if not head else f"starts with {head!r}"
        raise ConfigError(f"--generator {shown} is not a Keras model file: it {what}, while a .h5 file is HDF5 "
                          "and a .keras file a zip archive. Check that it is the generator you saved.")
    if named != found:
        right = ".h5" if found == "h5" else ".keras"
        raise ConfigError(f"--generator {shown} is {'an HDF5' if found == 'h5' else 'a .keras (zip)'} file; "
                          f"Keras reads it only under a name ending in {right}: rename it.")
    return found


def _model_config(path: Path, fmt: str) -> dict:
    """The model's configuration as stored in the file (JSON), without building anything."""
    shown = repr(str(path))
    try:
        if fmt == "h5":
            import h5py  # here, not at the top: see the module docstring

            with h5py.File(path, "r") as f:
                text = f.attrs.get("model_config")
                if text is None:
                    raise ConfigError(
                        f"--generator {shown} is an HDF5 file without a model in it (weights saved with "
                        "save_weights, or other data); build the generator, load the weights into it and "
                        "save it with `model.save('generator.keras')`.")
        else:
            with zipfile.ZipFile(path) as archive:
                text = archive.read("config.json")
        config = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except ConfigError:
        raise
    except KeyError:
        raise ConfigError(f"--generator {shown} is a zip archive without a config.json: not a Keras model "
                          "file.") from None
    except Exception as exc:  # a cut-short or damaged file
        raise ConfigError(f"--generator {shown} is damaged: its model configuration cannot be read "
                          f"({_first_line(exc)}). Save the generator again.") from None
    if not isinstance(config, dict):
        raise ConfigError(f"--generator {shown}: its model configuration is not a JSON object; the file is damaged.")
    return config


def _refuse_code(path: Path, config: Any) -> None:
    """Refuse a configuration with a layer that holds Python code (see UNSAFE_LAYERS)."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("class_name") in UNSAFE_LAYERS:
                name = (item.get("config") or {}).get("name", "?") if isinstance(item.get("config"), dict) else "?"
                raise ConfigError(
                    f"--generator {str(path)!r} has a {item['class_name']} layer ({name!r}), which holds Python "
                    "code and is refused for safety; rebuild the generator from standard layers (e.g. "
                    "Activation, Rescaling, Reshape) and save it again.")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _from_keras2(path: Path, config: dict) -> dict | None:
    """A copy of a tf.keras 2.x configuration that Keras 3 reads, or None when it needs no change.

    tf.keras 2.x stores ``groups: 1`` in every transposed convolution's config,
    an argument Keras 3's Conv2DTranspose does not take (keras-team/keras#19441):
    every notebook generator would fail to load. 1, the default, means a plain
    transposed convolution, so dropping it changes nothing; any other value is
    refused. LeakyReLU's ``alpha`` becomes ``negative_slope`` (the same value
    under Keras 3's name, without its deprecation warning).
    """
    fixed, changed = json.loads(json.dumps(config)), False
    stack = [fixed]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        kind, layer = item.get("class_name"), item.get("config")
        if isinstance(layer, dict):
            if kind in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose") and "groups" in layer:
                if layer["groups"] not in (1, None):
                    raise ConfigError(f"--generator {str(path)!r}: layer {layer.get('name')!r} is a grouped "
                                      f"transposed convolution (groups={layer['groups']}), which Keras 3 lacks.")
                del layer["groups"]
                changed = True
            if kind == "LeakyReLU" and "alpha" in layer and "negative_slope" not in layer:
                layer["negative_slope"] = layer.pop("alpha")
                changed = True
        stack.extend(item.values())
    return fixed if changed else None


def _check_shapes(path: Path, model) -> tuple[int, int, int]:
    """(latent_dim, image size, channels) of a generator-shaped ``model``; ConfigError otherwise."""
    inputs, outputs = list(model.inputs), list(model.outputs)
    expected = ("a generator maps noise (None, latent) to images (None, S, S, C) with S in "
                f"{', '.join(map(str, IMAGE_SIZES))} and C 1 or 3")
    problems = []
    if len(inputs) != 1 or len(outputs) != 1:
        problems.append(f"it has {len(inputs)} input(s) and {len(outputs)} output(s), not one of each")
    else:
        shape_in, shape_out = tuple(inputs[0].shape), tuple(outputs[0].shape)
        if len(shape_in) != 2 or shape_in[1] is None:
            problems.append(f"its input is {_shape(shape_in)}, not (None, latent)")
        if len(shape_out) != 4:
            problems.append(f"its output is {_shape(shape_out)}, not (None, S, S, C)")
            if len(shape_in) == 4 and len(shape_out) == 2:
                problems.append("it looks like a discriminator (images in, a score out)")
        else:
            _, h, w, c = shape_out
            if h != w or h not in IMAGE_SIZES:
                problems.append(f"its images are {h}x{w}, not one of "
                                + ", ".join(f"{s}x{s}" for s in IMAGE_SIZES))
            if c not in CHANNELS:
                problems.append(f"its images have {c} channels, not 1 or 3")
    if problems:
        raise ConfigError(f"--generator {str(path)!r} is not a generator the harness can use: "
                          f"{'; '.join(problems)} ({expected}).")
    return int(inputs[0].shape[1]), int(outputs[0].shape[1]), int(outputs[0].shape[3])


def _shape(shape: tuple) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _output_activation(model) -> str | None:
    """The name of the activation that makes ``model``'s output, or None when there is none.

    Walks back from the last layer through layers that only move values
    (Reshape, ...) and into a nested model that ends the network.
    """
    layers = list(model.layers)
    while layers:
        layer = layers.pop()
        if hasattr(layer, "layers") and layer.layers:  # a nested model ends the network
            layers = list(layer.layers)
            continue
        if type(layer).__name__ in _SHAPE_ONLY:
            continue
        activation = getattr(layer, "activation", None)
        name = getattr(activation, "__name__", None) if activation is not None else None
        return None if name in (None, "linear") else name
    return None


def _to_tanh_range(model, latent: int):
    """``model`` followed by ``2x - 1``: images in [0, 1] read as [-1, 1]."""
    import keras

    z = keras.Input((latent,), name="z")
    images = keras.layers.Rescaling(2.0, offset=-1.0, name="to_tanh_range")(model(z))
    return keras.Model(z, images, name=f"{model.name}_in_tanh_range")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__
