"""The ``backbone`` command: the offline FID/KID/IS backbone, a compact CIFAR-10 classifier."""

from __future__ import annotations

import argparse
import inspect

from harness import flags
from harness.commands.common import add_data_root, add_tracking
from harness.measure import backbone_training as backbone

# The defaults are train_backbone's own.
_DEFAULTS = inspect.signature(backbone.train_backbone).parameters


def add_backbone(sub) -> None:
    p = sub.add_parser("backbone", help="the offline FID/KID/IS backbone: a compact CIFAR-10 classifier",
                       description="Manage the offline backbone used for FID/KID/IS when the Inception "
                                   "graph is absent (values are named after the backbone that made them).")
    actions = p.add_subparsers(dest="backbone_action", metavar="ACTION", required=True)
    t = actions.add_parser("train", help="train it on all of CIFAR-10, cache it and log it to MLflow",
                           description="Train the CIFAR-10 classifier backbone (about 20 minutes on 2 CPU "
                                       "cores), save it in $HARNESS_CACHE_DIR/backbones and log it to the "
                                       "MLflow experiment 'backbones'.")
    t.add_argument("--epochs", type=int, default=_DEFAULTS["epochs"].default, help="default: %(default)s")
    t.add_argument("--channels", "--width", dest="channels", type=int, default=_DEFAULTS["channels"].default,
                   help="channels of the first stage (default: %(default)s)")
    t.add_argument("--max-images", type=int, help="use only the first N training and test images (a quick look)")
    add_tracking(t)
    add_data_root(t)
    t.set_defaults(handler=cmd_backbone_train)


def cmd_backbone_train(args: argparse.Namespace) -> int:
    flags.check_flags({"--epochs": (args.epochs, flags.positive), "--channels": (args.channels, flags.positive),
                       "--max-images": (args.max_images, flags.positive)})
    result = backbone.train_backbone(epochs=args.epochs, channels=args.channels, max_images=args.max_images,
                                     data_root=args.data_root, tracking_uri=args.tracking_uri)
    print(f"backbone trained: test accuracy {result['accuracy']:.2%} in {result['seconds'] / 60:.1f} min "
          f"-> {result['path']} (MLflow run {result['run_id']})")
    return 0
