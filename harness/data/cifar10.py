"""CIFAR-10 from the original python batches, verified before it is unpickled.

Files are read from ``<data root>/cifar-10-batches-py/``. Each file's md5
is checked against the published value before any byte is unpickled, and
the unpickler admits only dicts, lists, bytes, str, ints and the three numpy
names that spell a plain uint8 array (rebuilt by our own code, not numpy's),
so a tampered file cannot run code even if it matched a checksum.
"""

from __future__ import annotations

import io
import pickle
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

from harness.checksums import md5_of
from harness.data.dataset import data_root as default_data_root
from harness.errors import ConfigError, DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TARBALL_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"

# The published checksums (the ones torchvision and others verify).
MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
SPLIT_FILES = {
    "train": ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"],
    "test": ["test_batch"],
}
SPLIT_COUNTS = {"train": 5000, "test": 1000}  # images per class

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Dataset names are the plural label names: "horses" is label 7 ("deer" stays "deer").
CLASSES = {(label if label == "deer" else label + "s"): index for index, label in enumerate(LABELS)}


# --- integrity: md5 first, then a restricted unpickler -----------------------

# (resolved path, size, mtime_ns) -> md5, so one process hashes a file once.
_verified: dict[tuple[str, int, int], str] = {}


def verify(path: Path, expected: str) -> None:
    """Raise DataError unless the file at ``path`` has md5 ``expected``."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    actual = _verified.get(key) or md5_of(path)
    if actual != expected:
        raise DataError(
            f"CIFAR-10 file {path} has md5 {actual}, not the published {expected}: it is corrupt, "
            f"truncated or not from the python version of CIFAR-10. Delete {path.parent} and "
            f"unpack cifar-10-python.tar.gz (md5 {TARBALL_MD5}) again."
        )
    _verified[key] = actual


class _DtypeStub:
    """Stand-in for numpy.dtype that accepts only uint8."""

    def __init__(self, code: object, align: object = 0, copy: object = 1) -> None:
        if code not in (b"u1", "u1"):
            raise pickle.UnpicklingError(f"dtype {code!r} is not uint8")

    def __setstate__(self, state: object) -> None:
        pass  # byte order and flags are irrelevant for single bytes


class _ArrayStub:
    """Stand-in for numpy.ndarray: keeps the shape and raw bytes of a uint8 array."""

    shape: tuple[int, ...] = ()
    raw: bytes = b""

    def __setstate__(self, state: tuple) -> None:
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DtypeStub) or fortran or not isinstance(raw, bytes):
            raise pickle.UnpicklingError("array is not a plain uint8 C-order array")
        if not all(isinstance(n, int) for n in shape) or int(np.prod(shape)) != len(raw):
            raise pickle.UnpicklingError("array shape does not match its data")
        self.shape, self.raw = tuple(shape), raw


def _reconstruct(cls: object, shape: object, typecode: object) -> _ArrayStub:
    if cls is not _ArrayStub:
        raise pickle.UnpicklingError("only ndarray may be reconstructed")
    return _ArrayStub()


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _ArrayStub,
    ("numpy", "dtype"): _DtypeStub,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _plain(value: object) -> object:
    """Turn array stubs into numpy arrays, recursively."""
    if isinstance(value, _ArrayStub):
        return np.frombuffer(value.raw, dtype=np.uint8).reshape(value.shape)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def restricted_load(data: bytes, source: str = "<bytes>") -> object:
    """Unpickle ``data`` admitting only plain containers and uint8 arrays.

    Raises DataError naming ``source`` for anything else.
    """
    try:
        return _plain(_RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load())
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"CIFAR-10 file {source} is not a plain CIFAR batch ({exc}); unpack the tarball again.") from None


# --- locating or fetching the files ------------------------------------------

def download(url: str, dest: Path) -> None:
    """Fetch ``url`` to ``dest`` (raises OSError on any network failure)."""
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)
    tmp.replace(dest)


def _missing_message(root: Path, reason: str) -> str:
    return (
        f"CIFAR-10 was not found in {root / FOLDER} and {reason}. On a machine with internet, "
        f"download {URL} (md5 {TARBALL_MD5}) and unpack it into {root}, so that "
        f"{root / FOLDER / 'data_batch_1'} exists; or point HARNESS_DATA_DIR (--data-root) at the "
        f"folder that holds {FOLDER}/."
    )


def _fetch(root: Path) -> None:
    """Download and unpack the official tarball into ``root``; DataError when offline."""
    tarball = root / "cifar-10-python.tar.gz"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not tarball.exists():
            print(f"downloading CIFAR-10 (163 MB) from {URL} to {root}", file=sys.stderr)
            download(URL, tarball)
    except OSError as exc:  # URLError, timeouts and refused connections are all OSErrors
        raise DataError(_missing_message(root, f"could not be downloaded ({exc})")) from None
    if md5_of(tarball) != TARBALL_MD5:
        tarball.unlink()
        raise DataError(_missing_message(root, "the downloaded tarball failed its md5 check (deleted it)"))
    with tarfile.open(tarball, "r:gz") as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(FOLDER + "/") and m.isfile()]
        # filter="data" refuses absolute paths, links out of root and devices.
        archive.extractall(root, members=members, filter="data")


def batch_folder(root: Path, files: list[str], *, check_md5: bool = True) -> Path:
    """Return the batch folder under ``root`` holding ``files``, fetching it when it is absent.

    With ``check_md5`` each file is verified (hashed once per process);
    without, only their presence is checked.
    """
    folder = root / FOLDER
    if not folder.is_dir():
        _fetch(root)
    missing = [name for name in files if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 folder {folder} lacks {', '.join(missing)}. Unpack cifar-10-python.tar.gz "
            f"(md5 {TARBALL_MD5}) into {root} again so that all seven batch files are present."
        )
    for name in files if check_md5 else ():
        verify(folder / name, MD5[name])
    return folder


def check_split(split: str) -> list[str]:
    """Return the batch files of ``split`` ("train" or "test"); ConfigError otherwise."""
    if split not in SPLIT_FILES:
        raise ConfigError(f"unknown split {split!r} for CIFAR-10. Valid splits: train, test.")
    return SPLIT_FILES[split]


# --- public loaders -------------------------------------------------------------

def load_cifar10(split: str = "train", data_root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load every CIFAR-10 image of ``split`` with its label.

    Returns ``(images, labels)``: uint8 (N, 32, 32, 3) NHWC and int64 (N,)
    class indices (0 airplane ... 9 truck, see ``LABELS``); N is 50,000 for
    "train" and 10,000 for "test", in the files' order.
    """
    files = check_split(split)
    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    folder = batch_folder(root, ["batches.meta", *files])
    images, labels = [], []
    for name in files:
        batch = restricted_load((folder / name).read_bytes(), str(folder / name))
        if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
            raise DataError(f"CIFAR-10 file {folder / name} has no data/labels; unpack the tarball again.")
        # Stored channel-major (N, 3072) = (N, 3, 32, 32); the project uses NHWC.
        images.append(np.asarray(batch[b"data"]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def load_class(name: str, split: str, root: Path) -> np.ndarray:
    """Return the uint8 (N, 32, 32, 3) images of class ``name`` (e.g. "horses") in file order."""
    images, labels = load_cifar10(split, root)
    return np.ascontiguousarray(images[labels == CLASSES[name]])


def fingerprint_parts(name: str, split: str) -> list[str]:
    """What identifies a class's bytes: the published md5s of the files read."""
    return [FOLDER, name, split] + [f"{f}={MD5[f]}" for f in ["batches.meta", *SPLIT_FILES[split]]]


def available(root: Path) -> bool:
    """Whether all CIFAR-10 batch files are present under ``root`` (not verified)."""
    return all((root / FOLDER / name).is_file() for name in MD5)
