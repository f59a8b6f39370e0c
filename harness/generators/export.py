"""Write a logged generator as a file to use outside the harness: ``.h5``, ``.keras`` or a SavedModel.

- ``keras``: Keras's own format (``keras.saving.save_model``); read back by
  ``keras.saving.load_model`` and by ``--generator``.
- ``h5``: Keras's legacy HDF5 format, the notebooks' (``keras.saving.save_model``
  on a ``.h5`` name, i.e. ``legacy_h5_format.save_model_to_hdf5``). Keras 3
  writes its own layer configurations into it: it loads in Keras 3 and with
  ``--generator``; tf.keras 2.x may not read those configurations.
- ``savedmodel``: a TensorFlow SavedModel folder (``model.export(...,
  format="tf_saved_model")``) with one endpoint, ``serve``: float32 noise
  (None, latent) -> images (None, S, S, C) in [-1, 1]; for TF Serving, the
  TFLite converter and ``tf.saved_model.load``. Keras's ``load_model`` does
  not read it (``keras.layers.TFSMLayer`` does).

Every format holds the generator's output as it is: images in [-1, 1]
(``uint8 = round((x + 1) * 127.5)``). An export never replaces an existing
file or folder, and is written under a temporary name beside ``out`` and then
renamed, so an interrupted export leaves no half-written file behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from harness.errors import ConfigError

# Keras and harness.generators.sampling (MLflow) are imported inside functions: the CLI reads
# FORMATS from this module, and `--help`, `variants` and `datasets` must not load them.

FORMATS = ("h5", "keras", "savedmodel")
_SUFFIXES = {".h5": "h5", ".hdf5": "h5", ".keras": "keras"}


def format_for(out: str | Path, fmt: str | None = None) -> str:
    """The format to write ``out`` in: ``fmt``, else read from its suffix; checked against the suffix."""
    out = Path(out)
    named = _SUFFIXES.get(out.suffix.lower())
    if fmt is None:
        if named is None:
            raise ConfigError(f"--out {str(out)!r}: say which format with --format h5, keras or savedmodel "
                              "(or end the name in .h5 or .keras).")
        return named
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} must be one of {', '.join(FORMATS)}.")
    if fmt == "savedmodel" and named is not None:
        raise ConfigError(f"--out {str(out)!r}: a SavedModel is a folder; give a name without {out.suffix}.")
    if fmt != "savedmodel" and named != fmt:
        raise ConfigError(f"--out {str(out)!r}: Keras writes the {fmt} format only under a name ending in "
                          f"{'.h5' if fmt == 'h5' else '.keras'}.")
    return fmt


def export_generator(generator, out: str | Path, fmt: str | None = None) -> Path:
    """Write the Keras ``generator`` to ``out`` in ``fmt`` (see the module docstring); return ``out``."""
    out = Path(out)
    fmt = format_for(out, fmt)
    _check_free(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name keeps the suffix: Keras picks the format from it.
    temporary = out.with_name(f".{out.stem}.partial-{os.getpid()}{out.suffix}")
    try:
        if fmt == "savedmodel":
            generator.export(str(temporary), format="tf_saved_model", verbose=False)
        else:
            import keras

            with _legacy_warning_hidden():
                keras.saving.save_model(generator, temporary)
        os.rename(temporary, out)  # a folder or a file; `out` was checked to be free
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        elif temporary.exists():
            temporary.unlink()
    return out


def export_logged(tracking_uri: str, model_uri: str, out: str | Path, fmt: str | None = None) -> Path:
    """Write the generator logged at ``model_uri`` (``models:/...``) to ``out``; return ``out``.

    The destination is checked before anything is downloaded.
    """
    from harness.generators import sampling

    format_for(out, fmt)
    _check_free(Path(out))
    return export_generator(sampling.load_generator(tracking_uri, model_uri), out, fmt)


def check_out(out: str | Path) -> None:
    """Refuse an ``out`` that exists or cannot be written, before any generator is looked up."""
    _check_free(Path(out))


def _check_free(out: Path) -> None:
    """Refuse an ``out`` that exists, or whose folder cannot take a new file (probed by writing one)."""
    if out.exists() or out.is_symlink():
        raise ConfigError(f"--out {str(out)!r} already exists; remove it or choose another name.")
    folder = out.parent.resolve()
    while not folder.exists():  # the folders still to make go under the nearest existing one
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:  # /proc, a read-only mount, a folder of someone else...
        raise ConfigError(f"--out {str(out)!r} is not writable: {str(folder)!r} refuses new files "
                          f"({exc.strerror or exc}); choose a folder you can write to.") from None


@contextlib.contextmanager
def _legacy_warning_hidden():
    """Hide Keras's "HDF5 is a legacy format" warning: the h5 format is asked for on purpose."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
