"""The memorisation check: generated samples beside their nearest training images.

A generator that copies its training images scores well against them and
can still score well against a held-out reference, so the scores alone do not
show it. The check is to look: each row is one sample, then its ``k``
nearest training images, nearest first. Nearness is measured in the feature
space of the backbone the run was evaluated with, not in pixels: pixel
distance is dominated by colour and position, so a shifted copy would not be
found while any two flat images would.

The header gives the scale to read the distances on: the median distance
from a training image to its nearest other training image. A copy is far
below it; a new image of the class is near it.

Used twice with the same layout: a run's final evaluation logs the grid as
``NEAREST_ARTIFACT`` (reports collect it), and ``sample --nearest`` draws it
for any logged run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from harness.images import viewable_scale
from harness.measure import prdc
from harness.measure.reference import reference_stats

NEAREST_ARTIFACT = "nearest/final.png"  # the grid a run's final evaluation logs
ROWS = 8  # samples in the grid a run logs
K = 3  # training images beside each sample

_WHITE, _RULE, _INK = (255, 255, 255), (200, 200, 200), (40, 40, 40)
_TEXT = 14  # px of one line of label text


@dataclass(frozen=True)
class Neighbours:
    """The nearest training images of each sample: ``indices`` and ``distances`` (n_samples, k), nearest first.

    typical: the median distance from a training image to its nearest other
    training image (None with a single training image), the scale the
    distances are read on.
    """

    indices: np.ndarray
    distances: np.ndarray
    typical: float | None


def draw(backbone, generator, training: np.ndarray, *, training_key: str | None = None, rows: int = ROWS,
         k: int = K, seed: int = 0, cache_dir: Path | None = None, log=print) -> tuple[np.ndarray, Neighbours]:
    """Sample ``rows`` images from the Keras ``generator`` and draw the grid of their nearest ``training`` images.

    Sample i comes from seed ``seed + i``, as in ``sample`` and the model
    server. Returns the grid (``neighbour_grid``) and the neighbours found.
    """
    from harness.store.generator_model import generate, seed_noise  # MLflow: only when drawing

    noise = seed_noise(range(seed, seed + rows), int(generator.input_shape[-1]))
    samples = generate(generator, noise)
    found = nearest_training(backbone, samples, training, k=k, training_key=training_key, cache_dir=cache_dir,
                             log=log)
    return neighbour_grid(samples, training, found, backbone=backbone.name), found


def nearest_training(backbone, samples: np.ndarray, training: np.ndarray, *, k: int = K,
                     training_key: str | None = None, cache_dir: Path | None = None,
                     log=print) -> Neighbours:
    """Find the ``k`` nearest of uint8 ``training`` images to each uint8 sample, in ``backbone``'s features.

    training_key: the training images' reference-statistics cache key, so their
    features are extracted once per backbone (None: not cached).
    """
    if training_key is None:
        train_features = backbone.features_and_probabilities(training)[0]
    else:
        train_features = reference_stats(backbone, training_key, training, cache_dir, log=log).features
    sample_features = backbone.features_and_probabilities(samples)[0]
    k = min(k, len(train_features))
    indices, distances = prdc.nearest_neighbours(sample_features, train_features, k)
    typical = (float(np.median(prdc.kth_neighbour_radii(train_features, 1)))
               if len(train_features) > 1 else None)
    return Neighbours(indices, distances, typical)


def neighbour_grid(samples: np.ndarray, training: np.ndarray, found: Neighbours, *, backbone: str,
                   scale: int | None = None) -> np.ndarray:
    """The grid as a uint8 (H, W, 3) image: per row a sample, a rule, its nearest training images.

    Under each neighbour its feature distance; a header names the columns,
    the backbone and the typical distance between training images.
    """
    n, h, w = samples.shape[:3]
    scale = scale or viewable_scale(w)
    cell_h, cell_w, pad, gap = h * scale, w * scale, 4, max(12, w * scale // 4)
    k = found.indices.shape[1]
    row_h = cell_h + _TEXT + pad
    lines = [f"sample | its {k} nearest training images, nearest first; under each, its distance",
             f"(features of {backbone})" + ("" if found.typical is None else
                                             f"; training images: median {found.typical:.3g} to the nearest other")]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    header = len(lines) * _TEXT + pad
    width = max(pad + cell_w + gap + k * (cell_w + pad), *(int(measure.textlength(t)) + 2 * pad for t in lines))
    canvas = Image.new("RGB", (width, header + n * row_h + pad), _WHITE)
    draw = ImageDraw.Draw(canvas)
    left = pad + cell_w + gap
    for i, text in enumerate(lines):
        draw.text((pad, 2 + i * _TEXT), text, fill=_INK)
    for i in range(n):
        top = header + i * row_h
        canvas.paste(_tile(samples[i], scale), (pad, top))
        draw.line([(pad + cell_w + gap // 2, top), (pad + cell_w + gap // 2, top + cell_h)], fill=_RULE, width=2)
        for j in range(k):
            x = left + j * (cell_w + pad)
            canvas.paste(_tile(training[found.indices[i, j]], scale), (x, top))
            draw.text((x, top + cell_h + 1), f"{found.distances[i, j]:.3g}", fill=_INK)
    return np.asarray(canvas)


def _tile(image: np.ndarray, scale: int) -> Image.Image:
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    return Image.fromarray(np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1))
