"""Turn any image file or array into a square uint8 array of a chosen size.

The one preprocessing method, used for every source and size:

1. Colour: EXIF orientation applied; grayscale replicated to RGB; alpha
   (RGBA, LA, palette with transparency) composited over white; CMYK and
   YCbCr converted by Pillow; 16-bit and 32-bit images scaled to 8 bits
   (not clipped, so a 16-bit PNG keeps its contrast).
2. Shape: centre-crop to the largest central square (no padding, so the
   generator never learns letterbox bars). Images under ``MIN_SIDE``
   pixels on a side (icons, tracking pixels) are skipped, not blown up.
3. Size: Pillow resize with BOX (area averaging, antialiased) when
   shrinking and BICUBIC when enlarging. Large JPEGs are first decoded at a
   reduced DCT scale (still at least twice the target) so huge photos stay
   fast and small in memory. Images still over ``MAX_PIXELS`` (40 megapixels)
   are skipped as "too large" before their pixels are read: other formats
   offer no reduced decoding, and a tiny PNG can hold a 12000x12000 image.

Bump ``PREPROCESS_VERSION`` whenever this changes: it is part of every
fingerprint, so caches and logged runs made with older preprocessing are
never mistaken for new ones.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from harness.errors import os_error_reason

PREPROCESS_VERSION = "1"

# Folders at or above this many files are decoded by a pool of processes.
POOL_MIN_FILES = 256
POOL_PROCESSES = 2
# Smaller images (tracking pixels, icons) carry no picture worth training on.
MIN_SIDE = 8
# The pixel budget: larger images (after JPEG's reduced decoding) are skipped as
# "too large". A PNG compresses a flat 12000x12000 image into under 1 MB, yet
# decoding it takes gigabytes and seconds; 40 MP (e.g. 8000x5000) costs at most
# about 1 GB and a few seconds per decoding process.
MAX_PIXELS = 40_000_000


def _to_8bit(image: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer and float images to 8-bit grayscale ("L")."""
    array = np.asarray(image)
    if image.mode == "F":
        # Float images come as [0, 1] or [0, 255]; anything else is clipped.
        scale = 255.0 if float(np.nanmax(array, initial=0.0)) <= 1.0 else 1.0
        array = np.nan_to_num(array) * scale
    elif array.dtype.itemsize > 1:
        # 16-bit data (mode I;16 or I holding 0..65535): keep the high byte.
        peak = int(array.max(initial=0))
        array = array / 257.0 if peak > 255 else array
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), "L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Return ``image`` as 8-bit RGB, applying the colour rules in the module docstring."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = _to_8bit(image)
    if image.mode == "P":
        # Palette images may carry transparency; go through RGBA to honour it.
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def square_resize(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop ``image`` to a square and resize it to ``size`` x ``size``."""
    width, height = image.size
    side = min(width, height)
    if width != height:
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if side == size:
        return image
    method = Image.Resampling.BOX if side > size else Image.Resampling.BICUBIC
    return image.resize((size, size), method)


def resize_array(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 (N, H, W, C) images to (N, size, size, C) with ``square_resize``.

    Returns ``images`` itself when it already has the requested size.
    """
    if images.shape[1] == size and images.shape[2] == size:
        return images
    channels = images.shape[3]
    out = np.empty((len(images), size, size, channels), dtype=np.uint8)
    for i, image in enumerate(images):
        pil = Image.fromarray(image[..., 0] if channels == 1 else image)
        resized = np.asarray(square_resize(pil, size))
        out[i] = resized[..., None] if channels == 1 else resized
    return out


def decode_file(path: str, size: int) -> tuple[np.ndarray | None, str]:
    """Decode one image file to uint8 (size, size, 3).

    Returns ``(array, "")`` on success, or ``(None, reason)`` for a file
    that must be skipped (empty, truncated, not an image, unreadable). Never
    raises for a bad file: one bad photo must not stop a run.
    """
    try:
        if os.path.getsize(path) == 0:
            return None, "empty file"
        with warnings.catch_warnings():
            # Pillow warns on large images and odd metadata; a warning here is
            # not actionable for the user and would flood the log.
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                if min(image.size) < MIN_SIDE:
                    return None, f"too small: {image.size[0]}x{image.size[1]} px"
                if image.format == "JPEG":
                    image.draft("RGB", (2 * size, 2 * size))
                width, height = image.size
                if width * height > MAX_PIXELS:
                    return None, f"too large: {width}x{height} px, over the {MAX_PIXELS / 1e6:g}-megapixel limit"
                image.load()
                image = ImageOps.exif_transpose(image)
                image = square_resize(to_rgb(image), size)
                return np.asarray(image, dtype=np.uint8).copy(), ""
    except Image.DecompressionBombError:
        return None, "too large: over Pillow's pixel limit"
    except UnidentifiedImageError:
        return None, "not an image"
    except PermissionError:
        return None, "permission denied"
    except OSError as exc:
        if exc.errno is not None:  # the file system's fault (link loop, vanished file...), not the image's
            return None, os_error_reason(exc)
        return None, _decoder_reason(exc)
    except (ValueError, SyntaxError, EOFError) as exc:
        return None, _decoder_reason(exc)


def _decoder_reason(exc: Exception) -> str:
    # Truncated and malformed files raise OSError/SyntaxError from the
    # decoders, worded differently per format; keep the decoder's words
    # unless it is a truncation, the commonest case.
    words = (str(exc).splitlines() or [type(exc).__name__])[0][:80]
    return "truncated" if "truncat" in words.lower() else f"unreadable: {words}"


def _decode_job(job: tuple[str, int]) -> tuple[np.ndarray | None, str]:
    return decode_file(*job)


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork is fastest, but forking a process whose TensorFlow threads are
    # running can deadlock the child; fall back to spawn once TF is loaded.
    if "tensorflow" in sys.modules or "fork" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context("fork")


def decode_files(
    paths: Sequence[str | Path], size: int, *, processes: int | None = None, progress: bool = False
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Decode ``paths`` in order to uint8 (N, size, size, 3).

    Returns the images of the readable files, in the order given, and a
    list of ``(path, reason)`` for the files skipped. Uses a pool of
    ``processes`` workers (default: 2 for ``POOL_MIN_FILES`` files or more).
    """
    jobs = [(str(p), size) for p in paths]
    if processes is None:
        processes = POOL_PROCESSES if len(jobs) >= POOL_MIN_FILES else 1
    results: Iterator[tuple[np.ndarray | None, str]]
    pool = None
    if processes > 1:
        try:
            pool = _pool_context().Pool(processes)
        except OSError:
            # No semaphores or /dev/shm (some containers): decode in this process.
            pool = None
    results = pool.imap(_decode_job, jobs, chunksize=32) if pool is not None else map(_decode_job, jobs)
    if progress:
        from tqdm import tqdm  # only with a bar: importing it adds 80 ms to every command

        results = tqdm(results, total=len(jobs), desc="decoding", unit="img", file=sys.stderr)
    images: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    try:
        for (path, _), (array, reason) in zip(jobs, results):
            if array is None:
                skipped.append((path, reason))
            else:
                images.append(array)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    stacked = np.stack(images) if images else np.zeros((0, size, size, 3), dtype=np.uint8)
    return stacked, skipped
