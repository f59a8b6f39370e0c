"""The Inception path on a tiny GraphDef with the reference graph's tensor names and legacy ops.

The tiny graph mirrors classify_image_graph_def.pb where the loader touches
it: DecodeJpeg -> Cast -> ExpandDims -> ResizeBilinear -> Sub -> Mul -> a conv
with ``BatchNormWithGlobalNormalization`` (an op newer GraphDef versions
removed, as the 2015 file uses) -> ``pool_3`` (AvgPool) -> ``pool_3/_reshape``
(batch 1 hard-coded) -> ``softmax/logits/MatMul`` -> bias -> ``softmax``.
"""

from __future__ import annotations

import hashlib
import io
import tarfile

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from harness.errors import ConfigError, DataError  # noqa: E402
from harness.measure.backbones import inception  # noqa: E402

RESIZE, CHANNELS, CLASSES = (9, 9), 4, 5
TINY = inception.GraphSignature(resize=RESIZE, feature_dim=CHANNELS, num_classes=CLASSES)


def tiny_graph_def(rng_seed: int = 0):
    """Build the tiny graph in TF1 style; return (GraphDef, softmax weights, biases)."""
    rng = np.random.default_rng(rng_seed)
    const = lambda shape, name, low=-1.0, high=1.0: tf.constant(  # noqa: E731
        rng.uniform(low, high, size=shape).astype(np.float32), name=name)
    graph = tf.Graph()
    with graph.as_default():
        contents = tf.compat.v1.placeholder(tf.string, shape=[], name="DecodeJpeg/contents")
        decoded = tf.io.decode_jpeg(contents, channels=3, name="DecodeJpeg")
        x = tf.expand_dims(tf.cast(decoded, tf.float32, name="Cast"), 0, name="ExpandDims")
        x = tf.raw_ops.ResizeBilinear(images=x, size=tf.constant(RESIZE, name="ResizeBilinear/size"),
                                      name="ResizeBilinear")
        x = tf.multiply(tf.subtract(x, 128.0, name="Sub"), 1 / 128, name="Mul")
        x = tf.nn.conv2d(x, const((3, 3, 3, CHANNELS), "conv/conv2d_params"), 1, "VALID", name="conv/Conv2D")
        for part in ("moving_mean", "beta", "gamma"):
            const((CHANNELS,), f"conv/batchnorm/{part}")
        const((CHANNELS,), "conv/batchnorm/moving_variance", 0.5, 2.0)
        x = tf.nn.relu(tf.identity(x, name="conv/batchnorm"), name="conv")
        pool = tf.nn.avg_pool2d(x, [1, RESIZE[0] - 2, RESIZE[1] - 2, 1], 1, "VALID", name="pool_3")
        flat = tf.reshape(pool, [1, CHANNELS], name="pool_3/_reshape")
        weights, biases = const((CHANNELS, CLASSES), "softmax/weights"), const((CLASSES,), "softmax/biases", 2, 3)
        logits = tf.nn.bias_add(tf.matmul(flat, weights, name="softmax/logits/MatMul"), biases, name="softmax/logits")
        tf.nn.softmax(logits, name="softmax")
    graph_def = graph.as_graph_def()
    # Swap the stand-in for the op the 2015 graph uses, at that file's old producer version.
    for node in graph_def.node:
        if node.name == "conv/batchnorm":
            node.op = "BatchNormWithGlobalNormalization"
            del node.input[:]
            node.input.extend(["conv/Conv2D"] + [f"conv/batchnorm/{p}" for p in
                                                 ("moving_mean", "moving_variance", "beta", "gamma")])
            for key in list(node.attr):
                del node.attr[key]
            node.attr["T"].type = tf.float32.as_datatype_enum
            node.attr["variance_epsilon"].f = 0.001
            node.attr["scale_after_normalization"].b = True
    graph_def.versions.producer = 5
    nodes = {n.name: n for n in graph_def.node}
    return (graph_def, tf.make_ndarray(nodes["softmax/weights"].attr["value"].tensor),
            tf.make_ndarray(nodes["softmax/biases"].attr["value"].tensor))


def run_graph_directly(graph_def, images: np.ndarray, fetch: str) -> np.ndarray:
    """What the tiny graph computes when fed one image at a time, as TTUR feeds it."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return np.concatenate([session.run(fetch, {"ExpandDims:0": image[None].astype(np.float32)})
                               for image in images])


@pytest.fixture(scope="module")
def tiny():
    return tiny_graph_def()


@pytest.fixture
def graph_file(tmp_path, tiny):
    path = tmp_path / inception.GRAPH_FILE
    path.write_bytes(tiny[0].SerializeToString())
    return path


@pytest.fixture
def images():
    return np.random.default_rng(1).integers(0, 256, size=(7, 6, 6, 3), dtype=np.uint8)


def test_features_equal_what_the_graph_computes_at_pool_3(graph_file, tiny, images):
    backbone = inception.InceptionBackbone(graph_file, expected=TINY, batch_size=3)
    features, probs = backbone.features_and_probabilities(images)
    direct = run_graph_directly(tiny[0], images, "pool_3:0").reshape(len(images), CHANNELS)
    np.testing.assert_allclose(features, direct, rtol=1e-6, atol=1e-6)
    assert features.shape == (7, CHANNELS) and probs.shape == (7, CLASSES)


def test_probabilities_are_the_reference_softmax_without_bias(graph_file, tiny, images):
    graph_def, weights, biases = tiny
    backbone = inception.InceptionBackbone(graph_file, expected=TINY)
    features, probs = backbone.features_and_probabilities(images)
    logits = features.astype(np.float64) @ weights
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), rtol=1e-5)
    # The graph's own softmax adds the bias; improved-gan's IS does not.
    with_bias = run_graph_directly(graph_def, images, "softmax:0")
    assert np.abs(with_bias - probs).max() > 1e-3


def test_batch_size_does_not_change_the_features(graph_file, images):
    results = [inception.InceptionBackbone(graph_file, expected=TINY, batch_size=b).features(images)
               for b in (1, 3, 7)]
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=1e-6, atol=1e-6)


def test_images_of_any_size_are_resized_inside_the_graph(graph_file, tiny):
    backbone = inception.InceptionBackbone(graph_file, expected=TINY)
    large = np.random.default_rng(2).integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    direct = run_graph_directly(tiny[0], large, "pool_3:0").reshape(2, CHANNELS)
    np.testing.assert_allclose(backbone.features(large), direct, rtol=1e-6, atol=1e-6)


def test_one_channel_images_are_replicated_to_rgb(graph_file, images):
    backbone = inception.InceptionBackbone(graph_file, expected=TINY)
    gray = images[..., :1]
    np.testing.assert_array_equal(backbone.features(gray), backbone.features(np.repeat(gray, 3, -1)))
    with pytest.raises(ValueError, match="uint8"):
        backbone.features(images.astype(np.float32))


def test_the_archive_gives_the_same_network(tmp_path, graph_file, images):
    archive = tmp_path / inception.ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(graph_file, arcname=inception.GRAPH_FILE)
    packed, plain = (inception.InceptionBackbone(p, expected=TINY) for p in (archive, graph_file))
    np.testing.assert_array_equal(packed.features(images), plain.features(images))
    # One network, one identity: the md5 is the graph's, wherever the file keeps it.
    assert packed.identity == plain.identity
    assert plain.identity.md5 == hashlib.md5(graph_file.read_bytes()).hexdigest()
    assert plain.identity.test_accuracy is None and "pool_3 4-d" in plain.identity.settings
    assert plain.identity.params() == {"eval_backbone": inception.NAME, "eval_backbone_md5": plain.identity.md5,
                                       "eval_backbone_settings": plain.identity.settings}


def test_a_different_network_is_refused_not_used(graph_file, tmp_path, tiny):
    with pytest.raises(DataError, match="not the inception-2015-12-05 graph.*2048"):
        inception.InceptionBackbone(graph_file)  # the tiny graph is not the reference's shape
    trimmed = type(tiny[0])()
    trimmed.CopyFrom(tiny[0])
    kept = [n for n in trimmed.node if not n.name.startswith("softmax")]
    del trimmed.node[:]
    trimmed.node.extend(kept)
    other = tmp_path / "other.pb"
    other.write_bytes(trimmed.SerializeToString())
    with pytest.raises(DataError, match="no node softmax/logits/MatMul"):
        inception.InceptionBackbone(other, expected=TINY)
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(DataError, match="not a TensorFlow GraphDef"):
        inception.InceptionBackbone(junk, expected=TINY)


def test_the_graph_is_looked_for_in_order(tmp_path, monkeypatch):
    data, cache, explicit = tmp_path / "data", tmp_path / "cache", tmp_path / "mine.pb"
    monkeypatch.delenv("HARNESS_INCEPTION", raising=False)
    assert inception.find_graph(None, data, cache) is None
    (cache / "inception").mkdir(parents=True)
    (cache / "inception" / inception.ARCHIVE).write_bytes(b"x")
    assert inception.find_graph(None, data, cache) == cache / "inception" / inception.ARCHIVE
    (data / "inception").mkdir(parents=True)
    (data / "inception" / inception.GRAPH_FILE).write_bytes(b"x")
    assert inception.find_graph(None, data, cache) == data / "inception" / inception.GRAPH_FILE
    assert inception.find_graph(data / "inception", data, cache) == data / "inception" / inception.GRAPH_FILE
    for wrong in (tmp_path / "missing.pb", tmp_path / "cache"):  # a given path is never swapped for another
        with pytest.raises(ConfigError, match="--inception .* is neither"):
            inception.find_graph(wrong, data, cache)
    explicit.write_bytes(b"x")
    monkeypatch.setenv("HARNESS_INCEPTION", str(explicit))
    assert inception.find_graph(None, data, cache) == explicit
    monkeypatch.setenv("HARNESS_INCEPTION", str(tmp_path / "gone.pb"))
    with pytest.raises(ConfigError, match=r"\$HARNESS_INCEPTION .* is neither"):
        inception.find_graph(None, data, cache)


def _archive_bytes() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(inception.GRAPH_FILE)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    return buffer.getvalue()


def test_download_verifies_the_checksum(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_INCEPTION_MD5", raising=False)
    source = tmp_path / "served.tgz"
    source.write_bytes(_archive_bytes())
    url = source.as_uri()  # a local file: tests never reach the network
    good = hashlib.md5(source.read_bytes()).hexdigest()
    with pytest.raises(ConfigError, match="without its checksum"):
        inception.download(tmp_path / "a", url=url)
    with pytest.raises(DataError, match="does not match"):
        inception.download(tmp_path / "b", expected_md5="0" * 32, url=url)
    assert not list((tmp_path / "b").iterdir())
    saved = inception.download(tmp_path / "c", expected_md5=good, url=url)
    assert saved.read_bytes() == source.read_bytes() and saved.name == inception.ARCHIVE
