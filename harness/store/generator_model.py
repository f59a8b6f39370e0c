"""The generator as an MLflow pyfunc model (served by ``harness/store/model_server.py``).

The logged model "generator" is this file plus the Keras network:

    generator/
      MLmodel            python_function flavour, signature
      serving.py         this file: MLflow runs it to get the model (models from code)
      artifacts/generator.keras

MLflow 3 refuses to unpickle a pickled ``PythonModel`` unless told to, so the
model is logged from code: MLflow executes the copy of this file stored with
the model, and ``set_model`` at the bottom hands it the wrapper. That copy must
run where only mlflow, keras, numpy and pillow are installed, so this file
imports nothing from ``harness``.

Requests (``/invocations``) are rows, each asking for ``n`` images starting at
``seed``: image k of a row is drawn from seed ``seed + k``, so a seed always
gives the same image. A row without ``seed`` gets random seeds, returned with
the images so that they can be asked for again. Every row of a request names
the same keys (MLflow reads a missing one as NaN, which is not a whole number).
``params.format`` picks uint8 arrays (column ``image``, (H, W, C)) or base64
PNGs (column ``png``)::

    {"dataframe_records": [{"seed": 3, "n": 1}, {"seed": 10, "n": 4}], "params": {"format": "png"}}
    {"inputs": {"n": [16]}}
"""

from __future__ import annotations

import base64
import io

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema
from PIL import Image

# Keras (with TensorFlow) is imported inside the functions that run the network:
# `register` and `serve` name a generator through this module without running it.

KERAS_ARTIFACT = "keras_model"  # the artifacts key of the .keras file
KERAS_FILE = "generator.keras"
MAX_IMAGES = 256  # per request; model_config "max_images_per_request" overrides it
FORMATS = ("uint8", "png")
_BATCH = 256


def seed_noise(seeds, latent_dim: int) -> np.ndarray:
    """Latent vectors (len(seeds), latent_dim) float32: row i is N(0, 1) drawn from seed i.

    The contract between ``sample`` and the server: one seed, one image,
    whatever else is in the batch.
    """
    return np.stack([np.random.default_rng(int(s)).standard_normal(latent_dim).astype(np.float32)
                     for s in seeds]) if len(seeds) else np.zeros((0, latent_dim), np.float32)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats to uint8 [0, 255]; the same formula as ``harness.images.to_uint8``."""
    return np.clip(np.rint((np.asarray(images, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def generate(generator, noise: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) images of a Keras generator for float32 ``noise``, in inference mode."""
    import keras

    out = [keras.ops.convert_to_numpy(generator(noise[i:i + _BATCH], training=False))
           for i in range(0, len(noise), _BATCH)]
    return to_uint8(np.concatenate(out)) if out else np.zeros((0, *generator.output_shape[1:]), np.uint8)


def png_base64(image: np.ndarray) -> str:
    """A uint8 (H, W, C) image as a base64 PNG string."""
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


INPUT_EXAMPLE = (pd.DataFrame({"seed": [0], "n": [2]}), {"format": "uint8"})  # logged with the model


def signature():
    """The model signature: rows of optional ``n``/``seed``, a ``format`` param, images out."""
    return ModelSignature(
        inputs=Schema([ColSpec("long", "n", required=False), ColSpec("long", "seed", required=False)]),
        outputs=Schema([ColSpec("long", "seed"),
                        ColSpec(Array(Array(Array("long"))), "image", required=False),
                        ColSpec("string", "png", required=False)]),
        params=ParamSchema([ParamSpec("format", "string", "uint8")]),
    )


class GeneratorModel(mlflow.pyfunc.PythonModel):
    """Images from the logged Keras generator, by count and/or seed (see the module doc)."""

    def load_context(self, context) -> None:
        import keras

        # safe_mode refuses Lambda layers and other arbitrary code in the file.
        self.generator = keras.saving.load_model(context.artifacts[KERAS_ARTIFACT], compile=False,
                                                 safe_mode=True)
        self.latent_dim = int(self.generator.input_shape[-1])
        self.max_images = int((context.model_config or {}).get("max_images_per_request", MAX_IMAGES))

    # The DataFrame hint tells MLflow to keep the explicit signature (no inference).
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """A DataFrame with one row per image: ``seed`` and ``image`` (uint8) or ``png`` (base64)."""
        fmt = (params or {}).get("format") or "uint8"
        if fmt not in FORMATS:
            raise _bad(f"params.format={fmt!r} is not one of {', '.join(FORMATS)}.")
        seeds = self.seeds(pd.DataFrame(model_input))
        images = generate(self.generator, seed_noise(seeds, self.latent_dim))
        if fmt == "png":
            return pd.DataFrame({"seed": seeds, "png": [png_base64(im) for im in images]})
        return pd.DataFrame({"seed": seeds, "image": list(images)})

    def seeds(self, rows) -> list[int]:
        """One seed per requested image, checking every row's ``n`` and ``seed``."""
        unknown = set(rows.columns) - {"n", "seed"}
        if unknown:
            raise _bad(f"unknown input column(s) {', '.join(map(str, sorted(unknown)))}; "
                       "send rows with 'n' (how many images) and/or 'seed' (the first image's seed).")
        if len(rows) == 0 or not len(rows.columns):
            # MLflow drops columns the signature does not name, so {"x": 1} arrives empty.
            raise _bad("no 'n' or 'seed' in the request; send rows such as "
                       "{\"dataframe_records\": [{\"seed\": 3, \"n\": 4}]} (every row with the same keys).")
        seeds: list[int] = []
        fresh = np.random.default_rng()
        for i, row in enumerate(rows.to_dict("records")):
            n = _whole(row.get("n"), f"row {i}: n", default=1)
            seed = _whole(row.get("seed"), f"row {i}: seed", default=None)
            if n < 1:
                raise _bad(f"row {i}: n={n} must be at least 1.")
            if seed is not None and not 0 <= seed < 2**63 - n:
                raise _bad(f"row {i}: seed={seed} must be 0 or more (and below 2**63 - n).")
            if len(seeds) + n > self.max_images:
                raise _bad(f"asked for {len(seeds) + n} images or more; at most {self.max_images} "
                           "per request: split it into several requests.")
            start = int(fresh.integers(0, 2**31)) if seed is None else seed
            seeds.extend(range(start, start + n))
        return seeds


def _whole(value, name: str, default):
    """``value`` as an int; missing (None/NaN) gives ``default``; anything else is a 400."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return default
    try:
        # float("5") would pass: a string or a boolean is refused, not converted.
        whole = not isinstance(value, (bool, np.bool_, str, bytes)) and float(value).is_integer()
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole:
        raise _bad(f"{name}={value!r} must be a whole number.")
    return int(value)


def _bad(message: str):
    # An MlflowException with INVALID_PARAMETER_VALUE is answered as HTTP 400
    # with this message; any other exception becomes a vague "unexpected error".
    return MlflowException.invalid_parameter_value(message)


if __name__ != "harness.store.generator_model":
    # MLflow is loading this file as a logged model's code (see the module doc).
    mlflow.models.set_model(GeneratorModel())
