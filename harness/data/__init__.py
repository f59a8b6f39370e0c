"""Datasets: one image class as a uint8 array, with where it came from.

Importing this package does not import TensorFlow (the CLI must start
fast); it needs numpy and Pillow only.

Public API
----------
``load_dataset(name, *, image_size=32, data_root=None, max_images=None,
split="train", min_images=1) -> Dataset``
    uint8 (N, S, S, C) NHWC images, C = 3 (1 for MNIST), not scaled
    (training scales to [-1, 1]). ``max_images`` keeps the first N in the
    source's fixed order; fewer than ``min_images`` (the batch size) raises
    DataError before any model is built.
``load_cifar10(split="train", data_root=None) -> (images, labels)``
    all ten CIFAR-10 classes with int labels, for classifiers.
``list_datasets(data_root=None) -> list[dict]``
    every known dataset: name, source, spec, available, count, where.
``Dataset.params()``
    data_name, data_source, data_path, data_count, data_skipped,
    data_fingerprint, data_image_size, as strings for MLflow.
``data_root()``, ``cache_root()``
    ``$HARNESS_DATA_DIR`` (else ~/.cache/harness/data) and
    ``$HARNESS_CACHE_DIR`` (else ~/.cache/harness).

How names resolve (registry.py)
-------------------------------
A plain NAME follows one fixed rule, whatever happens to be installed, so a
name never changes meaning between machines:

1. a CIFAR-10 class: airplanes, automobiles, birds, cats, deer, dogs,
   frogs, horses, ships, trucks → ``cifar10``;
2. else an Animals-10 class: butterflies, chickens, cows, elephants,
   sheep, spiders, squirrels (cats, dogs, horses are taken by rule 1) →
   ``animals10``;
3. ``digits`` / ``mnist`` → MNIST; ``fashion`` / ``fashion_mnist`` →
   Fashion-MNIST;
4. else a folder ``<data root>/NAME/`` → that folder (so ``eagles`` works
   once the photos are in ``<data root>/eagles/``);
5. else ConfigError listing the valid names and the closest one.

``SOURCE:NAME`` picks the source (``animals10:horses``, ``cifar10:cats``;
Animals-10 also takes the Italian folder name, ``animals10:cavallo``).
``SOURCE:NAME@PATH`` reads that source from PATH instead of the data root.
``folder:PATH`` takes every image under PATH, recursively, named after the
folder (``folder:/photos/eagles`` → "eagles").

Where each source is looked for
-------------------------------
- cifar10: ``<root>/cifar-10-batches-py/`` (the official python batches,
  md5-checked before a restricted unpickle; downloaded when absent and
  online, else DataError saying where to put them).
- animals10: ``<root>/animals10/raw-img/``, ``<root>/raw-img/`` or ``<root>``
  itself, holding Kaggle's Italian folders (cane→dogs, cavallo→horses,
  elefante→elephants, farfalla→butterflies, gallina→chickens, gatto→cats,
  mucca→cows, pecora→sheep, ragno→spiders, scoiattolo→squirrels).
- mnist / fashion_mnist: ``mnist.npz`` / ``fashion_mnist.npz`` (Keras
  layout) or the four IDX files in ``<root>/mnist/`` / ``<root>/fashion_mnist/``
  (details in mnist.py).
- folder: the given path.

Preprocessing (decode.py)
-------------------------
Every file becomes RGB (EXIF rotation applied; grayscale replicated; alpha
over white; CMYK converted; 16-bit scaled, not clipped), is centre-cropped
to its largest square, then resized with area averaging (Pillow BOX) when
shrinking or bicubic when enlarging. CIFAR-10 at 32 is returned as stored;
other sizes, and MNIST at other than 28, use the same crop-and-resize.
Empty, truncated, non-image, tiny (<8 px), unreadable and broken-link files
are skipped, counted in ``Dataset.skipped`` and named in
``skipped_examples``; hidden files are ignored. Large folders decode on a
pool of two processes.

Cache (cache.py)
----------------
Decoded arrays are stored once under ``<cache root>/datasets/`` as .npy
(loaded with allow_pickle=False) plus a JSON meta, keyed by source, name,
image size, preprocessing version and content fingerprint; a change in any
of them rebuilds. The fingerprint of CIFAR-10 is its published md5s, of
MNIST the file contents, of a folder its listing of (relative path, size,
mtime_ns) -- cheap, and changed by any added, removed or edited file.
"""

from harness.data.cifar10 import load_cifar10
from harness.data.dataset import Dataset, cache_root, data_root
from harness.data.registry import list_datasets, load_dataset

__all__ = ["Dataset", "cache_root", "data_root", "list_datasets", "load_cifar10", "load_dataset"]
