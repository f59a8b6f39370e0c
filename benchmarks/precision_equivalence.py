"""Does a variant train the same in bfloat16 as in float32? Writes benchmarks/precision_equivalence.json.

    python benchmarks/precision_equivalence.py --variant animals_baseline --dataset cifar10:horses \\
        --seeds 5 --epochs 10

Trains float32 and bfloat16 paired by seed, scores the final KID, and tests
equivalence (TOST) on the KID and the real/fake accuracies; what is tested
and when a variant passes is in ``harness/train/equivalence.py``. Variants
that pass are trained in bfloat16 by ``--precision auto`` on machines where
bfloat16 is faster. Run it on a quiet machine; each (precision, seed) is kept
and reused by a re-run with the same settings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    from harness.quiet import quiet_tensorflow

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="animals_baseline")
    parser.add_argument("--dataset", default="cifar10:horses")
    parser.add_argument("--seeds", type=int, default=5, help="pairs: seeds 0 .. N-1 (default: 5)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--eval-samples", type=int, default=5000)
    parser.add_argument("--backbone", default="auto", choices=("auto", "inception", "cifar10_classifier"))
    parser.add_argument("--inception", default=None, metavar="PATH")
    parser.add_argument("--margin", type=float, default=0.10, help="equivalence within ±margin of float32's mean")
    parser.add_argument("--out", default=None, help="the JSON merged into (default: benchmarks/precision_equivalence.json)")
    parser.add_argument("--runs", default=None, help="where each (precision, seed) is kept")
    args = parser.parse_args(argv)
    quiet_tensorflow()
    from harness.errors import HarnessError
    from harness.train.equivalence import run_equivalence
    from harness.train.precision import EQUIVALENCE_FILE

    try:
        run_equivalence(args.variant, args.dataset, seeds=args.seeds, epochs=args.epochs, batch_size=args.batch_size,
                        max_images=args.max_images, width=args.width, eval_samples=args.eval_samples,
                        backbone=args.backbone, inception=args.inception, margin=args.margin,
                        out=args.out or EQUIVALENCE_FILE, runs=args.runs)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
