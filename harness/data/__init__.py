"""Datasets: one image class as a uint8 array, with where it came from.

Importing this package does not import TensorFlow (the CLI must start fast);
it needs numpy and Pillow only.

Public API: ``load_dataset``, ``list_datasets``, ``load_cifar10``,
``data_root``, ``Dataset``.
"""

from harness.data.cifar10 import load_cifar10
from harness.data.dataset import Dataset, cache_root, data_root
from harness.data.registry import list_datasets, load_dataset

__all__ = ["Dataset", "cache_root", "data_root", "list_datasets", "load_cifar10", "load_dataset"]
