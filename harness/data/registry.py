"""Dataset names → sources, and the one entry point that loads them.

Spellings (``load_dataset``'s ``name``, the CLI's ``--dataset``):

- ``NAME`` — resolved by a fixed rule, whatever is installed: a CIFAR-10
  class (horses, birds, cats, deer, dogs, frogs, airplanes, automobiles,
  ships, trucks) → cifar10; else an Animals-10 class (elephants,
  butterflies, chickens, cows, sheep, spiders, squirrels) → animals10;
  ``digits`` or ``mnist`` → MNIST; ``fashion`` or ``fashion_mnist`` →
  Fashion-MNIST; else a folder ``<data root>/NAME/`` of images → folder;
  else an error listing the valid names.
- ``SOURCE:NAME`` — that source, e.g. ``animals10:horses``, ``cifar10:cats``
  (Animals-10 also accepts the Italian folder name, ``animals10:cavallo``).
- ``SOURCE:NAME@PATH`` — that source read from PATH instead of the data
  root: the folder holding cifar-10-batches-py/, the raw-img folder, or the
  MNIST folder or .npz file.
- ``folder:PATH`` — every image under PATH (recursive), named after the
  folder, e.g. ``folder:/photos/eagles`` → dataset "eagles".
"""

from __future__ import annotations

import logging
from pathlib import Path

from harness.data import animals10, cifar10, folder, mnist
from harness.data.cache import Entry, Plan, cached
from harness.data.dataset import Dataset
from harness.data.dataset import data_root as default_data_root
from harness.data.decode import resize_array
from harness.data.fingerprint import fingerprint, subset
from harness.errors import ConfigError, DataError, unknown_name

log = logging.getLogger(__name__)

SOURCES = ("cifar10", "animals10", "folder", "mnist", "fashion_mnist")
# Names each built-in source knows (the folder source takes a path instead).
NAMES = {
    "cifar10": sorted(cifar10.CLASSES),
    "animals10": sorted(animals10.CLASSES),
    "mnist": ["digits"],
    "fashion_mnist": ["fashion"],
}
# Plain names for the MNIST pair, besides the dataset names themselves.
MNIST_NAMES = {"digits": ("mnist", "digits"), "mnist": ("mnist", "digits"), "fashion": ("fashion_mnist", "fashion"),
               "fashion_mnist": ("fashion_mnist", "fashion"), "fashion-mnist": ("fashion_mnist", "fashion")}
# Folders under the data root that belong to a source, not to a user dataset.
SOURCE_FOLDERS = {cifar10.FOLDER, "animals10", "raw-img", "mnist", "MNIST", "fashion_mnist", "fashion-mnist", "FashionMNIST"}
SPELLING = "Spell a dataset NAME, SOURCE:NAME, SOURCE:NAME@PATH or folder:PATH (e.g. animals10:horses, folder:/photos/eagles)."


def resolve(spec: str, root: Path) -> tuple[str, str, Path | None]:
    """Return ``(source, name, path or None)`` for a dataset spelling (see the module docstring)."""
    source, sep, rest = spec.partition(":")
    if not sep:
        return _resolve_plain(spec, root)
    if source not in SOURCES:
        raise unknown_name("dataset source", source, SOURCES, hint=SPELLING)
    if source == "folder":
        if not rest:
            raise ConfigError(f"dataset {spec!r} gives no folder. Spell it folder:PATH, e.g. folder:/photos/eagles.")
        path = Path(rest).expanduser()
        return "folder", path.resolve().name or path.name, path
    name, at, where = rest.partition("@")
    if source == "animals10":
        name = animals10.ITALIAN.get(name, name)
    if name not in NAMES[source]:
        raise unknown_name(f"{source} dataset", name, NAMES[source], hint=SPELLING)
    if at and not where:
        raise ConfigError(f"dataset {spec!r} has '@' but no path after it. Spell it {source}:{name}@PATH.")
    return source, name, Path(where).expanduser() if at else None


def class_name(spec: str) -> str:
    """The class a dataset spelling names, without touching the disk: ``horses`` for
    ``horses``, ``cifar10:horses@/data/cifar``, ``animals10:cavallo``; ``eagles`` for
    ``folder:/photos/eagles``; ``digits`` for ``mnist``. An invalid spelling raises
    ConfigError, as loading it would."""
    source, sep, rest = spec.partition(":")
    if not sep:
        return MNIST_NAMES.get(spec, (None, spec))[1]
    # resolve() reads the disk only for plain names; a spelled-out source never does.
    return resolve(spec, Path("."))[1]


def _resolve_plain(name: str, root: Path) -> tuple[str, str, Path | None]:
    if name in cifar10.CLASSES:
        return "cifar10", name, None
    if name in animals10.CLASSES:
        return "animals10", name, None
    if name in MNIST_NAMES:
        return (*MNIST_NAMES[name], None)
    if name and "/" not in name and name not in SOURCE_FOLDERS and (root / name).is_dir():
        return "folder", name, root / name
    known = {*cifar10.CLASSES, *animals10.CLASSES, "digits", "fashion", *_root_folders(root)}
    raise unknown_name("dataset", name, known, hint=f"For your own images use folder:PATH, or put them in {root / name}/.")


def _root_folders(root: Path) -> list[str]:
    """Names of user image folders directly under the data root."""
    try:
        return sorted(p.name for p in root.iterdir()
                      if p.is_dir() and p.name not in SOURCE_FOLDERS and not p.name.startswith("."))
    except OSError:
        return []


def _cifar_plan(name: str, split: str, root: Path, image_size: int) -> Plan:
    # Fetch or fail before the cache is consulted: a run must not report a
    # data path that no longer holds the data.
    folder_path = cifar10.batch_folder(root, ["batches.meta", *cifar10.check_split(split)], check_md5=False).resolve()

    def build() -> Entry:
        return Entry(resize_array(cifar10.load_class(name, split, root), image_size))

    return Plan("cifar10", name, str(folder_path), fingerprint(cifar10.fingerprint_parts(name, split), image_size), build)


def _plan(source: str, name: str, where: Path | None, root: Path, split: str, image_size: int) -> Plan:
    if source == "cifar10":
        try:
            return _cifar_plan(name, split, where or root, image_size)
        except DataError as exc:
            if name not in animals10.CLASSES:
                raise
            raise DataError(f"{exc} For Animals-10's {name}, spell the dataset animals10:{name}.") from None
    if source in mnist.SOURCES:
        if split not in mnist.IDX:
            raise ConfigError(f"unknown split {split!r} for {source}. Valid splits: train, test.")
        return mnist.plan(source, where or root, split, image_size, explicit=where is not None)
    if split != "train":
        raise ConfigError(f"dataset {source}:{name} has only a train split, not {split!r}. Use split='train'.")
    if source == "animals10":
        return animals10.plan(name, where or root, image_size)
    assert where is not None  # resolve() always gives folder datasets a path
    return folder.plan(where, name, image_size)


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
    an unknown name or bad argument. Decoded arrays are cached (see cache.py),
    so only the first load of a source at a size decodes anything.
    """
    _check_args(image_size, max_images, min_images)
    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    source, resolved, where = resolve(name, root)
    plan = _plan(source, resolved, where, root, split, image_size)
    entry = cached(plan.source, plan.name, image_size, plan.fingerprint, plan.build, path=plan.path)
    images, fp = entry.images, plan.fingerprint
    if max_images is not None and max_images < len(images):
        images, fp = images[:max_images], subset(fp, max_images)
    dataset = Dataset(plan.name, plan.source, images, plan.path, fp, entry.skipped, entry.skipped_examples)
    _check_count(dataset, min_images)
    if dataset.skipped:
        log.warning("skipped %d unreadable files in %s: %s%s", dataset.skipped, dataset.path,
                    "; ".join(dataset.skipped_examples), " ..." if dataset.skipped > len(dataset.skipped_examples) else "")
    return dataset


def _check_count(dataset: Dataset, min_images: int) -> None:
    if dataset.count >= min_images:
        return
    skipped = ""
    if dataset.skipped:
        skipped = f" ({dataset.skipped} files skipped as unreadable: {'; '.join(dataset.skipped_examples)})"
    if dataset.count == 0:
        raise DataError(f"dataset {dataset.spec!r} at {dataset.path} has no usable images{skipped}. "
                        f"Add image files there, or pick another dataset.")
    raise DataError(
        f"dataset {dataset.spec!r} at {dataset.path} has {dataset.count} usable images{skipped}, fewer than "
        f"the {min_images} needed for one training batch. Add images, or lower the batch size to at most {dataset.count}."
    )


def list_datasets(data_root: str | Path | None = None) -> list[dict]:
    """Describe every known dataset, one dict each.

    Keys: ``name``, ``source``, ``spec`` (the unambiguous spelling),
    ``available`` (bool), ``count`` (training images, or image files for
    folders; None when unavailable) and ``where`` (the path it reads or
    would read). Only file listings are read, nothing is decoded.
    """
    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    rows = []

    def row(name: str, source: str, available: bool, count: int | None, where: Path) -> None:
        rows.append({"name": name, "source": source, "spec": f"{source}:{name}" if source != "folder" else f"folder:{where}",
                     "available": available, "count": count if available else None, "where": str(where)})

    have_cifar = cifar10.available(root)
    for name in NAMES["cifar10"]:
        row(name, "cifar10", have_cifar, cifar10.SPLIT_COUNTS["train"], root / cifar10.FOLDER)
    for name in NAMES["animals10"]:
        place = animals10.class_folder(name, root)
        have = place.is_dir()
        row(name, "animals10", have, folder.count_files(place) if have else None, place)
    for source, (name, folders, npz) in mnist.SOURCES.items():
        files = mnist.find(source, root)
        count = mnist.count_train(files) if files else None
        row(name, source, bool(files), count, files[0] if len(files) == 1 else (files[0].parent if files else root / folders[0]))
    for name in _root_folders(root):
        count = folder.count_files(root / name)
        row(name, "folder", count > 0, count, root / name)
    return rows
