"""The reference FID/IS network: the 2015-12-05 Inception graph, run as the reference runs it.

The graph (``classify_image_graph_def.pb`` in ``inception-2015-12-05.tgz``) is
imported as a frozen GraphDef and fed the way TTUR's ``fid.py`` and
improved-gan's ``inception_score`` feed it: float images in [0, 255] of any
size go into ``ExpandDims:0`` and the graph's own ``ResizeBilinear`` scales
them to 299 x 299 and normalises them. ``pool_3:0`` (2048 values) gives the
FID/KID features; the IS probabilities are softmax(pool_3 @ W) with W the
weights of ``softmax/logits/MatMul`` and no bias, over 1008 classes, as
improved-gan computes them.

The graph uses ops that TensorFlow removed from newer GraphDef versions
(``BatchNormWithGlobalNormalization``); a ``tf.function`` runs every kernel at
the current version and refuses them, while a v1 ``Session`` over a graph
imported at the file's producer version runs them unchanged. So this module
runs a Session, with a placeholder whose batch dimension is free mapped onto
``ExpandDims:0``; each image's result does not depend on the batch it is in.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.checksums import md5_of
from harness.data import cache_root
from harness.data import data_root as default_data_root
from harness.errors import ConfigError, DataError
from harness.measure.provenance import BackboneIdentity

# TensorFlow is imported inside functions: the CLI imports this module (through
# harness.measure.backbone_training), and `--help`, `variants` and `datasets` must not load it.

NAME = "inception-2015-12-05"
URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
ARCHIVE = "inception-2015-12-05.tgz"
GRAPH_FILE = "classify_image_graph_def.pb"
# The archive's published md5, checked after a download. No copy of the archive
# or of its published checksum was reachable when this was written, so none is
# pinned here: a download needs the value from $HARNESS_INCEPTION_MD5 (or the
# ``expected_md5`` argument) and is refused without one.
ARCHIVE_MD5: str | None = None

INPUT = "ExpandDims:0"
RESIZE = "ResizeBilinear"
POOL = "pool_3:0"
LOGITS_MATMUL = "softmax/logits/MatMul"


@dataclass(frozen=True)
class GraphSignature:
    """What identifies the reference network by structure: resize target and layer sizes."""

    resize: tuple[int, int]
    feature_dim: int
    num_classes: int


REFERENCE = GraphSignature(resize=(299, 299), feature_dim=2048, num_classes=1008)


# ---------------------------------------------------------------- finding and fetching the file


def candidates(inception_path: str | Path | None = None, data_root: Path | None = None,
               cache_dir: Path | None = None) -> list[Path]:
    """The places looked at, in order: the argument, $HARNESS_INCEPTION, the data root, the cache."""
    found: list[Path] = []
    for base in (inception_path, os.environ.get("HARNESS_INCEPTION")):
        if base:
            found += _at(base)
    for folder in ((data_root or default_data_root()) / "inception", (cache_dir or cache_root()) / "inception"):
        found += [folder / GRAPH_FILE, folder / ARCHIVE]
    return found


def _at(base: str | Path) -> list[Path]:
    """The file itself, or the graph and archive inside a folder."""
    base = Path(base).expanduser()
    return [base / GRAPH_FILE, base / ARCHIVE] if base.is_dir() else [base]


def find_graph(inception_path: str | Path | None = None, data_root: Path | None = None,
               cache_dir: Path | None = None) -> Path | None:
    """Return the first existing graph file or archive, or None.

    A given ``inception_path`` (else $HARNESS_INCEPTION) is the only place
    looked at: it must be the file or a folder holding it, never silently
    replaced by another copy.
    """
    given = inception_path or os.environ.get("HARNESS_INCEPTION")
    if given:
        found = [p for p in _at(given) if p.is_file()]
        if not found:
            name = "--inception" if inception_path else "$HARNESS_INCEPTION"
            raise ConfigError(
                f"{name} {str(given)!r} is neither {GRAPH_FILE} or {ARCHIVE} nor a folder holding one; "
                "pass the path of the file."
            )
        return found[0]
    return next((p for p in candidates(None, data_root, cache_dir) if p.is_file()), None)


def download(dest_dir: Path, *, expected_md5: str | None = None, url: str = URL, timeout: float = 60) -> Path:
    """Download the official archive into ``dest_dir`` and verify its md5; return its path.

    The md5 comes from ``expected_md5``, else $HARNESS_INCEPTION_MD5, else
    ``ARCHIVE_MD5``; without one nothing is downloaded. A mismatching file is
    deleted and reported.
    """
    expected = (expected_md5 or os.environ.get("HARNESS_INCEPTION_MD5") or ARCHIVE_MD5 or "").lower()
    if not expected:
        raise ConfigError(
            f"refusing to download {url} without its checksum: set HARNESS_INCEPTION_MD5 to the "
            f"archive's published md5, or download it yourself and pass --inception PATH."
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / ARCHIVE
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DataError(f"could not download {url} ({exc}); download it yourself and pass --inception PATH.") from None
    actual = md5_of(partial)
    if actual != expected:
        partial.unlink()
        raise DataError(f"{url}: md5 {actual} does not match the expected {expected}; the file was deleted.")
    os.replace(partial, target)
    return target


def graph_bytes(path: Path) -> bytes:
    """The serialized GraphDef: ``classify_image_graph_def.pb`` itself, or that member of the .tgz."""
    if tarfile.is_tarfile(path):
        with tarfile.open(path, "r:*") as archive:
            member = next((m for m in archive.getmembers() if Path(m.name).name == GRAPH_FILE and m.isfile()), None)
            if member is None:
                raise DataError(f"{path} holds no {GRAPH_FILE}; pass the official {ARCHIVE} or the graph file.")
            return archive.extractfile(member).read()
    return Path(path).read_bytes()


def read_graph_def(path: Path, data: bytes | None = None):
    """Parse the GraphDef from ``classify_image_graph_def.pb`` or from inside the .tgz (or ``data``)."""
    import tensorflow as tf

    data = graph_bytes(path) if data is None else data
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception:  # protobuf raises its own DecodeError
        raise DataError(f"{path} is not a TensorFlow GraphDef; pass {GRAPH_FILE} or {ARCHIVE}.") from None
    return graph_def


# ---------------------------------------------------------------- checking the structure


def signature_of(graph_def) -> GraphSignature:
    """Read the resize target, feature size and class count from the graph's constants."""
    import tensorflow as tf

    nodes = {node.name: node for node in graph_def.node}
    missing = [name for name in (INPUT.split(":")[0], RESIZE, POOL.split(":")[0], LOGITS_MATMUL) if name not in nodes]
    if missing:
        raise DataError(f"not the {NAME} graph: it has no node {', '.join(missing)}.")

    def constant(name: str) -> np.ndarray:
        node = nodes[name.split(":")[0].lstrip("^")]
        while node.op == "Identity":
            node = nodes[node.input[0].split(":")[0]]
        if node.op != "Const":
            raise DataError(f"not the {NAME} graph: {name} is a {node.op}, not a constant.")
        return tf.make_ndarray(node.attr["value"].tensor)

    size = constant(nodes[RESIZE].input[1])
    weights = constant(nodes[LOGITS_MATMUL].input[1])
    return GraphSignature(resize=(int(size[0]), int(size[1])), feature_dim=int(weights.shape[0]),
                          num_classes=int(weights.shape[1]))


# ---------------------------------------------------------------- the backbone


class InceptionBackbone:
    """Features (pool_3) and class probabilities of uint8 images from the 2015-12-05 graph.

    ``expected`` is the structure the file must have to be called ``NAME``
    (default ``REFERENCE``); a graph with another structure is refused rather
    than used silently.
    """

    name = NAME

    def __init__(self, path: str | Path, *, expected: GraphSignature | None = None, batch_size: int = 100):
        import tensorflow as tf

        expected = expected or REFERENCE
        self.path = Path(path)
        self.batch_size = batch_size
        data = graph_bytes(self.path)
        graph_def = read_graph_def(self.path, data)
        found = signature_of(graph_def)
        if found != expected:
            raise DataError(
                f"{self.path} is not the {NAME} graph: it resizes to {found.resize} and has "
                f"{found.feature_dim} features and {found.num_classes} classes, not {expected.resize}, "
                f"{expected.feature_dim} and {expected.num_classes}."
            )
        self.feature_dim = found.feature_dim
        # The graph's md5, not the file's: the .pb and the .tgz holding it are one network.
        self.identity = BackboneIdentity(
            name=NAME, md5=hashlib.md5(data).hexdigest(),
            settings=(f"pool_3 {found.feature_dim}-d features, {found.num_classes}-way softmax, "
                      f"resize {found.resize[0]}x{found.resize[1]}"))
        self.fingerprint = self.identity.md5[:12]

        graph = tf.Graph()
        with graph.as_default():
            self._images = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="images")
            (pool,) = tf.compat.v1.import_graph_def(
                graph_def, input_map={INPUT: self._images}, return_elements=[POOL], name="inception")
            weights = graph.get_operation_by_name(f"inception/{LOGITS_MATMUL}").inputs[1]
            self._features = tf.reshape(pool, [-1, self.feature_dim])
            # improved-gan's IS: softmax of pool_3 @ W, without the bias.
            self._probs = tf.nn.softmax(tf.matmul(self._features, weights))
        graph.finalize()
        self._session = tf.compat.v1.Session(graph=graph)

    @property
    def cache_id(self) -> str:
        """Identifies the network file in reference-statistics cache keys."""
        return f"{self.name}-{self.fingerprint}"

    def features_and_probabilities(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return pool_3 features (n, 2048) and IS probabilities (n, 1008) of uint8 NHWC images."""
        images = as_rgb_uint8(images)
        feats, probs = [], []
        for start in range(0, len(images), self.batch_size):
            batch = images[start:start + self.batch_size].astype(np.float32)
            f, p = self._session.run([self._features, self._probs], {self._images: batch})
            feats.append(f)
            probs.append(p)
        return np.concatenate(feats), np.concatenate(probs)

    def features(self, images: np.ndarray) -> np.ndarray:
        """pool_3 features (n, 2048) of uint8 NHWC images."""
        return self.features_and_probabilities(images)[0]

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """IS class probabilities (n, 1008) of uint8 NHWC images."""
        return self.features_and_probabilities(images)[1]

    def close(self) -> None:
        self._session.close()


def as_rgb_uint8(images: np.ndarray) -> np.ndarray:
    """Check uint8 NHWC and replicate one channel to three (MNIST-like data)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be uint8 (n, h, w, 1 or 3), got {images.dtype} {images.shape}")
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
