"""Dataset names → sources, and the one entry point that loads them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.data import cifar10
from harness.data.cache import Entry, cached
from harness.data.dataset import Dataset
from harness.data.dataset import data_root as default_data_root
from harness.data.decode import resize_array
from harness.data.fingerprint import fingerprint, subset
from harness.errors import ConfigError, DataError, unknown_name

SOURCES = ("cifar10",)


def _cifar_plan(name: str, split: str, root: Path, image_size: int) -> Plan:
    # Fetch or fail before the cache is consulted: a run must not report a
    # data path that no longer holds the data.
    folder = cifar10.batch_folder(root, ["batches.meta", *cifar10.check_split(split)], check_md5=False).resolve()

    def build() -> Entry:
        return Entry(resize_array(cifar10.load_class(name, split, root), image_size))

    return Plan("cifar10", name, str(folder), fingerprint(cifar10.fingerprint_parts(name, split), image_size), build)


def resolve(spec: str) -> tuple[str, str]:
    """Return ``(source, name)`` for a dataset spelling such as "horses" or "cifar10:horses"."""
    source, sep, name = spec.partition(":")
    if not sep:
        source, name = "", spec
    if source and source not in SOURCES:
        raise unknown_name("dataset source", source, SOURCES, hint=f"Spell a dataset as NAME or SOURCE:NAME, e.g. cifar10:horses.")
    if name in cifar10.CLASSES and source in ("", "cifar10"):
        return "cifar10", name
    raise unknown_name("dataset", name, cifar10.CLASSES)


def _check_args(image_size: int, max_images: int | None, min_images: int) -> None:
    if not isinstance(image_size, int) or not 8 <= image_size <= 1024:
        raise ConfigError(f"image size {image_size!r} is not an integer from 8 to 1024; use 32 (default), 28 or 64.")
    if max_images is not None and (not isinstance(max_images, int) or max_images < 1):
        raise ConfigError(f"max_images {max_images!r} must be a positive integer or None (all images).")
    if not isinstance(min_images, int) or min_images < 1:
        raise ConfigError(f"min_images {min_images!r} must be a positive integer.")


def load_dataset(
    name: str,
    *,
    image_size: int = 32,
    data_root: str | Path | None = None,
    max_images: int | None = None,
    split: str = "train",
    min_images: int = 1,
) -> Dataset:
    """Load the dataset spelled ``name`` as uint8 (N, image_size, image_size, C) images.

    ``max_images`` keeps the first N images in the source's fixed order.
    Raises DataError when the data is missing, corrupt, or has fewer than
    ``min_images`` usable images (pass the batch size), and ConfigError for
    an unknown name or bad argument. Decoded arrays are cached (see cache.py).
    """
    _check_args(image_size, max_images, min_images)
    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    source, resolved = resolve(name)
    plan = _cifar_plan(resolved, split, root, image_size)
    entry = cached(plan.source, plan.name, image_size, plan.fingerprint, plan.build, path=plan.path)
    images, fp = entry.images, plan.fingerprint
    if max_images is not None and max_images < len(images):
        images, fp = images[:max_images], subset(fp, max_images)
    dataset = Dataset(plan.name, plan.source, images, plan.path, fp, entry.skipped, entry.skipped_examples)
    _check_count(dataset, min_images)
    return dataset


def _check_count(dataset: Dataset, min_images: int) -> None:
    if dataset.count >= min_images:
        return
    skipped = ""
    if dataset.skipped:
        skipped = f" ({dataset.skipped} files skipped as unreadable, e.g. {'; '.join(dataset.skipped_examples)})"
    if dataset.count == 0:
        raise DataError(f"dataset {dataset.spec!r} at {dataset.path} has no usable images{skipped}. Add image files there, or pick another dataset.")
    raise DataError(
        f"dataset {dataset.spec!r} at {dataset.path} has {dataset.count} usable images{skipped}, fewer than "
        f"the {min_images} needed for one training batch. Add images, or lower the batch size to at most {dataset.count}."
    )


def list_datasets(data_root: str | Path | None = None) -> list[dict]:
    """Describe every known dataset: name, source, spec, available, count (or None), where it looks."""
    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    rows = []
    have = cifar10.available(root)
    for name in cifar10.CLASSES:
        rows.append({"name": name, "source": "cifar10", "spec": f"cifar10:{name}", "available": have,
                     "count": cifar10.SPLIT_COUNTS["train"] if have else None, "where": str(root / cifar10.FOLDER)})
    return rows
