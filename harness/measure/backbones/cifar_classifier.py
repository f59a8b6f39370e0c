"""An offline backbone: a compact CIFAR-10 classifier trained here, for FID/KID/IS without Inception.

The network is a narrow ResNet-9 in the style of Page's fast CIFAR-10
training (conv-BN-ReLU stages with max pooling, two residual blocks, a
global max pool and a scaled linear head), trained with random crops and
flips, label smoothing, SGD with Nesterov momentum and a one-cycle learning
rate. Its input is uint8 32x32 RGB (scaling and normalisation are layers of
the model, so the saved file is self-contained). The global pool's output,
layer ``features``, serves FID/KID; the softmax over the ten classes serves IS.

Values computed with it are named after it (``cifar10_classifier-v1``) and its
file's md5 (``provenance``) and are comparable only with values of the same
file, never with Inception-based numbers. Training it is a workflow and lives
in ``harness/measure/backbone_training.py``; this module holds the network, its augmentation and
schedule, the saved file and the backbone that reads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from harness.checksums import md5_of
from harness.data import cache_root
from harness.errors import DataError
from harness.measure.backbones.inception import as_rgb_uint8
from harness.measure.provenance import BackboneIdentity

# Keras and TensorFlow are imported inside functions: the CLI imports this module
# (through harness.measure.backbone_training), and `--help`, `variants` and `datasets` must not load them.

VERSION = 1
NAME = f"cifar10_classifier-v{VERSION}"
IMAGE_SIZE = 32


def model_dir(cache_dir: Path | None = None) -> Path:
    """Where the trained backbone lives: <cache>/backbones."""
    return (cache_dir or cache_root()) / "backbones"


def model_path(cache_dir: Path | None = None) -> Path:
    return model_dir(cache_dir) / f"{NAME}.keras"


def find_model(cache_dir: Path | None = None) -> Path | None:
    """Return the cached model file, or None when it has not been trained."""
    path = model_path(cache_dir)
    return path if path.is_file() and path.with_suffix(".json").is_file() else None


# ---------------------------------------------------------------- the network


def build_classifier(channels: int = 16, mean: np.ndarray | None = None, std: np.ndarray | None = None):
    """Return the uint8 (None, 32, 32, 3) -> 10 logits classifier; its stages have c, 2c, 4c, 8c channels."""
    import keras
    from keras import layers

    mean = np.full(3, 0.5) if mean is None else np.asarray(mean, dtype=np.float64)
    std = np.full(3, 0.25) if std is None else np.asarray(std, dtype=np.float64)

    def conv_bn(x, filters, name):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    def residual(x, filters, name):
        y = conv_bn(conv_bn(x, filters, f"{name}a"), filters, f"{name}b")
        return layers.Add(name=f"{name}_add")([x, y])

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), dtype="uint8", name="images")
    x = layers.Rescaling(1 / 255, name="scale")(inputs)  # casts uint8 to float32
    x = layers.Normalization(mean=mean.tolist(), variance=(std**2).tolist(), name="normalize")(x)
    x = conv_bn(x, channels, "prep")
    x = layers.MaxPooling2D(name="pool1")(conv_bn(x, 2 * channels, "stage1"))
    x = residual(x, 2 * channels, "res1")
    x = layers.MaxPooling2D(name="pool2")(conv_bn(x, 4 * channels, "stage2"))
    x = layers.MaxPooling2D(name="pool3")(conv_bn(x, 8 * channels, "stage3"))
    x = residual(x, 8 * channels, "res3")
    features = layers.GlobalMaxPooling2D(name="features")(x)
    logits = layers.Dense(10, use_bias=False, name="logits")(features)
    # Page's logit scale: keeps the softmax soft early in training.
    logits = layers.Rescaling(0.125, name="scaled_logits")(logits)
    return keras.Model(inputs, logits, name=NAME.replace("-", "_"))


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random 32x32 crops of the 4-pixel reflect-padded images, each flipped with probability 1/2."""
    n = len(images)
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
    out = np.empty_like(images)
    for i in range(n):
        out[i] = padded[i, dy[i]:dy[i] + IMAGE_SIZE, dx[i]:dx[i] + IMAGE_SIZE]
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out


def one_cycle(peak: float, total_steps: int, warmup: float = 0.25):
    """Linear warm-up to ``peak`` over ``warmup`` of the steps, then linear decay to 0."""
    import keras
    from keras import ops

    class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = ops.cast(step, "float32")
            up = max(1.0, warmup * total_steps)
            rising = peak * step / up
            falling = peak * ops.maximum(0.0, (total_steps - step) / max(1.0, total_steps - up))
            return ops.where(step < up, rising, falling)

        def get_config(self):
            return {}

    return OneCycle()


# ---------------------------------------------------------------- the saved file


def save(model, cache_dir: Path | None, meta: dict) -> Path:
    """Write the model and its JSON meta into the cache, each replaced atomically."""
    path = model_path(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.keras")
    # An uncompiled twin sharing the layers: the file then holds no optimizer or
    # schedule, and loads anywhere with plain keras.saving.load_model.
    import keras

    keras.Model(model.input, model.output, name=model.name).save(partial)
    os.replace(partial, path)
    meta_path = path.with_suffix(".json")
    partial_meta = meta_path.with_name(f".{meta_path.name}.{os.getpid()}")
    partial_meta.write_text(json.dumps(meta, indent=2, sort_keys=True))
    os.replace(partial_meta, meta_path)
    return path


# ---------------------------------------------------------------- the backbone


class CifarClassifierBackbone:
    """Features (the global pool) and ten-class probabilities of uint8 images.

    Images of another size are resized to 32x32 (area averaging) and rounded
    back to uint8 first; one channel is replicated to three.
    """

    name = NAME

    def __init__(self, path: str | Path, *, batch_size: int = 250, jit_compile: bool = True):
        import keras
        import tensorflow as tf

        self.path = Path(path)
        self.batch_size = batch_size
        self.meta = json.loads(self.path.with_suffix(".json").read_text())
        if self.meta.get("version") != VERSION:
            raise DataError(f"{self.path} is backbone version {self.meta.get('version')}, expected {VERSION}; "
                            "retrain it with `python -m harness backbone train`.")
        classifier = keras.saving.load_model(self.path, compile=False, safe_mode=True)
        both = keras.Model(classifier.input, [classifier.get_layer("features").output, classifier.output])
        self.feature_dim = int(both.outputs[0].shape[-1])
        self.identity = identity(self.path, self.meta)
        self.fingerprint = self.identity.md5[:12]

        @tf.function(input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.uint8)],
                     jit_compile=jit_compile)
        def run(images):
            features, logits = both(images, training=False)
            return features, tf.nn.softmax(logits)

        self._run = run

    @property
    def cache_id(self) -> str:
        """Identifies this trained model in reference-statistics cache keys."""
        return f"{self.name}-{self.fingerprint}"

    def features_and_probabilities(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return features (n, 8c) and softmax probabilities (n, 10) of uint8 NHWC images."""
        images = _to_32(as_rgb_uint8(images))
        feats, probs = [], []
        for start in range(0, len(images), self.batch_size):
            f, p = self._run(images[start:start + self.batch_size])
            feats.append(f.numpy())
            probs.append(p.numpy())
        return np.concatenate(feats), np.concatenate(probs)

    def features(self, images: np.ndarray) -> np.ndarray:
        return self.features_and_probabilities(images)[0]

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return self.features_and_probabilities(images)[1]


def identity(path: Path, meta: dict) -> BackboneIdentity:
    """Name, file md5, training settings and test accuracy of the model at ``path`` (meta: its .json)."""
    # Files written before the parameter was renamed say "width" for the channels.
    channels = meta.get("channels", meta.get("width"))
    settings = ", ".join(f"{key}={value}" for key, value in (
        ("channels", channels), ("epochs", meta.get("epochs")), ("train_images", meta.get("n_train")),
        ("test_images", meta.get("n_test")), ("seed", meta.get("seed"))) if value is not None)
    accuracy = meta.get("test_accuracy")
    return BackboneIdentity(name=meta.get("name", NAME), md5=md5_of(path), settings=settings,
                            test_accuracy=float(accuracy) if accuracy is not None else None)


def _to_32(images: np.ndarray) -> np.ndarray:
    if images.shape[1:3] == (IMAGE_SIZE, IMAGE_SIZE):
        return images
    import tensorflow as tf

    resized = tf.image.resize(tf.cast(images, tf.float32), (IMAGE_SIZE, IMAGE_SIZE), method="area")
    return np.clip(np.rint(resized.numpy()), 0, 255).astype(np.uint8)
