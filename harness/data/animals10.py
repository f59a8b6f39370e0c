"""Kaggle's Animals-10: ``raw-img/<italian folder>/*.jpeg``, one dataset per class.

The raw-img folder is looked for at ``<root>/animals10/raw-img``,
``<root>/raw-img`` and ``<root>`` itself (the first that holds any class
folder wins), where root is the data root or the path after ``@`` in
``animals10:horses@/path/to/raw-img``.
"""

from __future__ import annotations

from pathlib import Path

from harness.data import folder
from harness.data.cache import Plan
from harness.errors import DataError

KAGGLE = "https://www.kaggle.com/datasets/alessiocorrado99/animals10"

# Kaggle's folder names are Italian; datasets are named by the English plural.
ITALIAN = {
    "cane": "dogs",
    "cavallo": "horses",
    "elefante": "elephants",
    "farfalla": "butterflies",
    "gallina": "chickens",
    "gatto": "cats",
    "mucca": "cows",
    "pecora": "sheep",
    "ragno": "spiders",
    "scoiattolo": "squirrels",
}
CLASSES = {english: italian for italian, english in ITALIAN.items()}


def candidates(root: Path) -> list[Path]:
    """Return the raw-img locations searched under ``root``, in order."""
    return [root / "animals10" / "raw-img", root / "raw-img", root]


def find(root: Path) -> Path | None:
    """Return the first raw-img folder under ``root`` holding any class folder, or None."""
    for place in candidates(root):
        if any((place / italian).is_dir() for italian in ITALIAN):
            return place
    return None


def class_folder(name: str, root: Path) -> Path:
    """Return where class ``name`` (English) is, or would be, under ``root``."""
    return (find(root) or candidates(root)[0]) / CLASSES[name]


def plan(name: str, root: Path, image_size: int) -> Plan:
    """Plan loading Animals-10 class ``name`` (e.g. "horses") found under ``root``."""
    raw = find(root)
    if raw is None or not (raw / CLASSES[name]).is_dir():
        looked = ", ".join(str(p / CLASSES[name]) for p in ([raw] if raw else candidates(root)))
        raise DataError(
            f"Animals-10 class {name!r} (folder {CLASSES[name]}/) was not found; looked in {looked}. "
            f"Download Animals-10 from {KAGGLE} and unpack it so that "
            f"{root / 'animals10' / 'raw-img' / CLASSES[name]} exists, or spell the dataset "
            f"animals10:{name}@/path/to/raw-img."
        )
    return folder.plan(raw / CLASSES[name], name, image_size, source="animals10")
