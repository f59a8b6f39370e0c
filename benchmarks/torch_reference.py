"""The same GAN variants and training step in PyTorch (eager), to time against `harness bench`.

PyTorch is not a dependency of the harness. Run this in an environment of
its own, from the repository root (the variant specs are read from
``variants/``, which needs neither TensorFlow nor Keras):

    python3 -m venv .torch && .torch/bin/pip install torch numpy
    PYTHONPATH=. .torch/bin/python benchmarks/torch_reference.py --variants animals_baseline,bn_kernel4

The networks follow ``variants/builders.py`` layer for layer (same widths,
kernels, strides, BatchNorm placement, activations, dropout), in
channels_last memory format; padding reproduces Keras's "same" output sizes.
The step is the harness's: D on a real batch, D on a fake batch (or one mixed
batch), then G through D, each with Adam; real images arrive as uint8 and
are scaled inside the step. It prints real images trained per second, the
median over alternating repeats, as ``bench`` does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch import nn

from variants import resolve
from variants.spec import VariantSpec


class KerasSame(nn.Module):
    """A (transposed) convolution whose output size is Keras's ``padding="same"``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, transpose: bool):
        super().__init__()
        self.transpose = transpose
        if transpose:  # output = input * stride
            pad = (kernel - stride + 1) // 2
            extra = stride - kernel + 2 * pad
            self.conv = nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding=pad, output_padding=extra)
        else:  # output = ceil(input / stride); pad asymmetrically like TensorFlow
            self.kernel, self.stride = kernel, stride
            self.conv = nn.Conv2d(c_in, c_out, kernel, stride)

    def forward(self, x):
        if not self.transpose:
            size = x.shape[-1]
            out = -(-size // self.stride)
            total = max((out - 1) * self.stride + self.kernel - size, 0)
            x = nn.functional.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))
        return self.conv(x)


def activation(name: str, slope: float) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.LeakyReLU(slope)


def block(spec: VariantSpec, conv: nn.Module, c_out: int, bn: bool, act: str) -> list[nn.Module]:
    layers = [conv]
    norm = [nn.BatchNorm2d(c_out, momentum=1 - spec.bn_momentum, eps=1e-3)] if bn else []
    act_layer = [activation(act, spec.leaky_slope)]
    if spec.leaky_relu == "inline" or spec.bn_after_activation:
        return layers + act_layer + norm
    return layers + norm + act_layer


class Generator(nn.Module):
    def __init__(self, spec: VariantSpec):
        super().__init__()
        bn = spec.batchnorm in ("generator", "both")
        self.spec = spec
        self.project = nn.Linear(spec.latent_dim, spec.base * spec.base * spec.g_dense_filters)
        dense = [activation(spec.dense_activation, spec.leaky_slope)]
        if bn and spec.bn_on_dense:
            dense.insert(0, nn.BatchNorm2d(spec.g_dense_filters, momentum=1 - spec.bn_momentum, eps=1e-3))
        layers, c_in = list(dense), spec.g_dense_filters
        for filters in spec.g_filters:
            layers += block(spec, KerasSame(c_in, filters, spec.kernel, 2, True), filters, bn, spec.g_activation)
            c_in = filters
        stride = 2 if spec.g_out_transpose else 1
        layers += [KerasSame(c_in, spec.channels, spec.g_out_kernel, stride, spec.g_out_transpose), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z):
        x = self.project(z).view(-1, self.spec.base, self.spec.base, self.spec.g_dense_filters)
        return self.body(x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last))


class Discriminator(nn.Module):
    def __init__(self, spec: VariantSpec):
        super().__init__()
        bn = spec.batchnorm in ("discriminator", "both")
        layers, c_in, size = [], spec.channels, spec.image_size
        for i, b in enumerate(spec.d_blocks):
            kernel = b.kernel or (spec.kernel if b.stride > 1 else 3)
            layers += block(spec, KerasSame(c_in, b.filters, kernel, b.stride, False), b.filters, bn and i > 0,
                            "leaky_relu")
            if spec.dropout == "blocks":
                layers.append(nn.Dropout(spec.dropout_rate))
            c_in, size = b.filters, -(-size // b.stride)
        layers.append(nn.Flatten())
        if spec.dropout == "head":
            layers.append(nn.Dropout(spec.dropout_rate))
        layers.append(nn.Linear(c_in * size * size, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class Step:
    """One training step as the harness takes it, on uint8 NCHW (channels_last) batches."""

    def __init__(self, spec: VariantSpec):
        self.spec = spec
        self.g = Generator(spec).to(memory_format=torch.channels_last)
        self.d = Discriminator(spec).to(memory_format=torch.channels_last)
        self.g_opt = torch.optim.Adam(self.g.parameters(), spec.g_lr, betas=(spec.g_beta_1, 0.999), eps=1e-7)
        self.d_opt = torch.optim.Adam(self.d.parameters(), spec.d_lr, betas=(spec.d_beta_1, 0.999), eps=1e-7)
        self.loss = nn.BCEWithLogitsLoss()

    def __call__(self, images: torch.Tensor) -> None:
        real = images.float() / 127.5 - 1
        n = real.shape[0]
        ones, zeros = torch.ones(n, 1), torch.zeros(n, 1)
        fake = self.g(torch.randn(n, self.spec.latent_dim)).detach()
        if self.spec.d_update == "split":
            for batch, labels in ((real, ones), (fake, zeros)):
                self.d_opt.zero_grad(set_to_none=True)
                self.loss(self.d(batch), labels).backward()
                self.d_opt.step()
        else:
            self.d_opt.zero_grad(set_to_none=True)
            self.loss(self.d(torch.cat([real, fake])), torch.cat([ones, zeros])).backward()
            self.d_opt.step()
        self.g_opt.zero_grad(set_to_none=True)
        for p in self.d.parameters():
            p.requires_grad_(False)
        self.loss(self.d(self.g(torch.randn(n, self.spec.latent_dim))), ones).backward()
        for p in self.d.parameters():
            p.requires_grad_(True)
        self.g_opt.step()


def prepared(name: str, batch: int) -> tuple[Step, torch.Tensor]:
    """A warmed-up step of variant ``name`` and a uint8 batch to train it on."""
    spec = resolve(name)
    images = torch.from_numpy(np.random.default_rng(0).integers(
        0, 256, (batch, spec.channels, spec.image_size, spec.image_size), dtype=np.uint8)
    ).contiguous(memory_format=torch.channels_last)
    step = Step(spec)
    step(images), step(images)
    return step, images


def timed(step: Step, images: torch.Tensor, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step(images)
    return steps * images.shape[0] / (time.perf_counter() - start)


def serve(batch: int) -> None:
    """Read ``VARIANT STEPS`` lines, answer each with the img/s of that many steps."""
    import sys

    steps: dict[str, tuple[Step, torch.Tensor]] = {}
    print(f"ready torch {torch.__version__} threads {torch.get_num_threads()}", flush=True)
    for line in sys.stdin:
        name, count = line.split()
        if name not in steps:
            steps[name] = prepared(name, batch)
        print(f"{timed(*steps[name], int(count)):.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="animals_baseline,bn_kernel4")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", action="store_true",
                        help="answer 'VARIANT STEPS' lines on stdin with img/s (how `harness bench --torch` "
                             "times PyTorch in its own alternation)")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.serve:
        serve(args.batch_size)
        return
    steps = {name: prepared(name, args.batch_size) for name in args.variants.split(",")}
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):  # A B A B ...: drift hits every variant alike
        for name, (step, images) in steps.items():
            rates[name].append(timed(step, images, args.steps))
    result = {name: {"img_s": statistics.median(r), "runs": r} for name, r in rates.items()}
    result["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads()}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, r in rates.items():
            print(f"{name}: {statistics.median(r):.1f} img/s (PyTorch {torch.__version__} eager, "
                  f"{torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
