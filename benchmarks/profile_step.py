"""Where a training step's time goes: TensorFlow's trace of a few steps, summed per op type.

    python benchmarks/profile_step.py --variant animals_baseline --precision bfloat16 --steps 5

Trains ``--variant`` on random images at ``--batch-size`` with the harness's
step (``harness.train.gan.GAN``, as ``run`` does), traces ``--steps`` steps
with ``tf.profiler`` and prints each op type's time per step summed over the
threads that ran it (so the total exceeds the step's wall time on several
cores), then the ops that took longest. Run it on a quiet machine: other
jobs stretch ops unevenly.
"""

from __future__ import annotations

import argparse
import collections
import glob
import tempfile

# Op types whose time is the convolutions' own (forward and both gradients, oneDNN's names).
CONVOLUTIONS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "Conv2DBackpropFilterWithBias",
                "FusedConv2D")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="animals_baseline")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--top", type=int, default=20, help="op types and ops to list")
    args = parser.parse_args()

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from harness.train.gan import GAN
    from variants import resolve

    spec = resolve(args.variant)
    images = tf.cast(tf.random.uniform((args.batch_size, *spec.image_shape), 0, 256, dtype=tf.int32), tf.uint8)
    data = tf.data.Dataset.from_tensors(images).repeat()
    gan = GAN(spec, seed=0, precision=args.precision)
    gan.compile(jit_compile=False)
    gan.fit(data, epochs=1, steps_per_epoch=3, verbose=0)  # trace, compile and warm up
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        gan.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=0)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1], "rb") as f:
            space.ParseFromString(f.read())

    by_type: collections.Counter = collections.Counter()
    by_op: collections.Counter = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name  # "scope/op:Type" for TensorFlow ops
                if ":" in name and "/" in name and " " not in name:
                    op_type = name.rsplit(":", 1)[1].removeprefix("_MklNative").removeprefix("_Mkl")
                    ms = event.duration_ps / 1e9 / args.steps
                    by_type[op_type] += ms
                    by_op[name] += ms
    total = sum(by_type.values())
    convolutions = sum(ms for op_type, ms in by_type.items() if op_type in CONVOLUTIONS)
    print(f"{args.variant}, {args.precision}, batch {args.batch_size}: {total:.1f} ms of op time per step "
          f"(summed over threads); convolutions {convolutions:.1f} ms ({convolutions / total:.0%}), "
          f"the rest {total - convolutions:.1f} ms")
    for op_type, ms in by_type.most_common(args.top):
        print(f"  {op_type:36s} {ms:8.1f} ms")
    print("longest ops:")
    for name, ms in by_op.most_common(args.top):
        print(f"  {name[-100:]:100s} {ms:8.1f} ms")


if __name__ == "__main__":
    main()
