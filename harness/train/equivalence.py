"""Does a variant train the same in bfloat16 as in float32? ``run_equivalence(...)``.

For each seed the variant is trained twice on the same images in the same
order from the same initial weights, once per precision; each run is scored
(KID, from the generator as float32 Keras) at the end. Runs are paired by
seed and compared with the paired tests of ``harness.stats.paired``
(bfloat16 as the arm, float32 as the base; changes as fractions of the
float32 mean; TOST within ``±margin``):

- the final KID;
- real_acc and fake_acc averaged over the epochs (one pair per seed);
- real_acc and fake_acc at every epoch, as one Holm-adjusted family.

The variant passes (verdict ``equivalent``) when the final KID and both
epoch-averaged accuracies are ``equivalent`` and no per-epoch accuracy is
found ``better`` or ``worse``. ``auto`` precision reads the verdicts
(``harness.train.precision``), so a variant that does not pass stays float32.

Each (precision, seed) is saved under ``<runs>/`` as it finishes and reused
by a re-run with the same settings. The results are merged into
``benchmarks/precision_equivalence.json`` (other variants' kept) and its
Markdown table ``benchmarks/precision_equivalence.md``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import load_dataset
from harness.stats import adjust_family, compare_paired
from harness.train.precision import EQUIVALENCE_FILE
from variants import canonical_name, resolve

PRECISIONS = ("float32", "bfloat16")  # base, arm
ACCURACIES = ("real_acc", "fake_acc")


def run_equivalence(variant: str = "animals_baseline", dataset: str = "horses", *, seeds: int = 5,
                    epochs: int = 10, batch_size: int = 128, max_images: int | None = None, width: float = 1.0,
                    eval_samples: int = 5000, backbone: str = "auto", inception: str | None = None,
                    margin: float = 0.10, alpha: float = 0.05, out: str | Path = EQUIVALENCE_FILE,
                    runs: str | Path | None = None, log=print) -> dict[str, Any]:
    """Train ``variant`` on ``dataset`` in float32 and bfloat16 for ``seeds`` seeds; test; write the results.

    ``out`` is the JSON merged into (its ``.md`` sibling gets the table);
    ``runs`` where each (precision, seed) is kept (default: ``<out
    folder>/precision_runs``). Returns this variant's entry of the JSON.
    """
    import keras
    import tensorflow as tf

    from harness.data.pipeline import epoch_batches
    from harness.measure.evaluator import make_evaluator
    from harness.train.gan import GAN

    # --- the variant, the data, the evaluator -------------------------------------------
    spec = resolve(variant)
    data = load_dataset(dataset, image_size=spec.image_size, max_images=max_images, min_images=batch_size)
    spec = spec.for_image(data.images.shape[1], data.images.shape[3])
    if width != 1.0:
        spec = spec.scaled(width)
    out = Path(out)
    runs = Path(runs) if runs is not None else out.parent / "precision_runs"
    runs.mkdir(parents=True, exist_ok=True)
    evaluator = make_evaluator(
        dataset_key=f"{data.source}:{data.name}:train:{spec.image_size}:{data.fingerprint}",
        reference_images=data.images, n_samples=eval_samples, backbone=backbone, inception_path=inception, log=log)
    settings = {"variant": variant, "dataset": dataset, "images": len(data.images), "epochs": epochs,
                "batch_size": batch_size, "width": width, "seeds": seeds, "data_fingerprint": data.fingerprint,
                "evaluation": evaluator.params(), "tensorflow": tf.__version__, "keras": keras.__version__}
    log(f"precision equivalence: {variant} on {dataset} ({len(data.images)} images, {epochs} epochs, batch "
        f"{batch_size}), float32 vs bfloat16 over {seeds} seeds -> {out}")

    # --- train each (seed, precision), alternating, reusing what is saved -----------------
    images = tf.data.Dataset.from_tensor_slices(data.images)
    results: dict[str, dict[int, dict[str, Any]]] = {p: {} for p in PRECISIONS}
    for seed in range(seeds):
        for name in PRECISIONS:
            saved = runs / f"{variant}-{name}-seed{seed}.json"
            key = {**settings, "precision": name, "seed": seed}
            record = _reusable(saved, key)
            if record is None:
                keras.utils.set_random_seed(seed)  # the same initial weights in both precisions
                gan = GAN(spec, seed=seed, precision=name)
                gan.compile(jit_compile=False)
                per_epoch, start = [], time.perf_counter()
                for epoch in range(1, epochs + 1):
                    history = gan.fit(epoch_batches(images, batch_size, seed=seed, epoch=epoch), epochs=1,
                                      verbose=0, shuffle=False).history
                    per_epoch.append({k: float(history[k][-1]) for k in ACCURACIES})
                scores = evaluator.evaluate(gan.float32_generator(), latent_dim=spec.latent_dim, seed=seed)
                record = {"key": key, "epochs": per_epoch, "kid": float(scores["kid"]),
                          "train_seconds": time.perf_counter() - start}
                _write_json(saved, record)
            log(f"  {name} seed {seed}: KID {record['kid']:.4g}, last epoch "
                + " ".join(f"{k} {record['epochs'][-1][k]:.3f}" for k in ACCURACIES))
            results[name][seed] = record

    # --- the paired tests --------------------------------------------------------------------
    def compare(metric: str, value, scope: str = ""):
        return compare_paired({s: value(r) for s, r in results["bfloat16"].items()},
                              {s: value(r) for s, r in results["float32"].items()},
                              arm="bfloat16", base="float32", metric=metric, lower_is_better=metric == "kid",
                              margin=margin, alpha=alpha, scope=scope)

    headline = [compare("kid", lambda r: r["kid"])]
    headline += [compare(f"{k} (mean over epochs)", lambda r, k=k: float(np.mean([e[k] for e in r["epochs"]])))
                 for k in ACCURACIES]
    per_epoch = adjust_family([compare(k, lambda r, k=k, e=e: r["epochs"][e][k], f"epoch {e + 1}")
                               for k in ACCURACIES for e in range(epochs)])
    differs = [c for c in per_epoch if c.verdict in ("better", "worse")]
    if all(c.verdict == "equivalent" for c in headline) and not differs:
        verdict = "equivalent"
    elif differs or any(c.verdict in ("better", "worse") for c in headline):
        verdict = "different"
    else:
        verdict = "inconclusive"
    entry = {"verdict": verdict, "canonical": canonical_name(resolve(variant)), "settings": settings,
             "margin": margin, "alpha": alpha,
             "headline": [dataclasses.asdict(c) for c in headline],
             "per_epoch": [dataclasses.asdict(c) for c in per_epoch],
             "sentences": [c.sentence() for c in headline + differs]}
    log(f"{variant}: {verdict}\n" + "\n".join(f"  {s}" for s in entry["sentences"]))

    # --- write: merge into the JSON auto reads, and its table ----------------------------------
    everything = {"variants": {}}
    if out.is_file():
        everything = json.loads(out.read_text())
    everything.setdefault("variants", {})[variant] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_json(out, everything)
    out.with_suffix(".md").write_text(render_markdown(everything))
    return entry


def render_markdown(everything: dict[str, Any]) -> str:
    """The results as Markdown: per variant, its verdict and a row per headline comparison."""
    lines = ["# float32 vs bfloat16: does a variant train the same?", "",
             "Paired by seed (same data, order and initial weights); bfloat16's change as a fraction of "
             "float32's mean; TOST within ±margin. Written by `benchmarks/precision_equivalence.py`; "
             "`--precision auto` uses bfloat16 only for variants marked equivalent here.", ""]
    for variant, entry in everything.get("variants", {}).items():
        if not {"settings", "headline", "per_epoch"} <= set(entry):  # written by hand: its verdict only
            lines += [f"## `{variant}`: {entry.get('verdict')}", ""]
            continue
        s = entry["settings"]
        lines += [f"## `{variant}`: {entry['verdict']}", "",
                  f"{s['dataset']}, {s['images']} images, {s['epochs']} epochs, batch {s['batch_size']}, width "
                  f"{s['width']}, {s['seeds']} seeds; margin ±{100 * entry['margin']:g}%, alpha {entry['alpha']:g}.",
                  "", "| metric | change | interval | p (difference) | p (TOST) | verdict |", "|---|---|---|---|---|---|"]
        for c in entry["headline"]:
            change = "—" if c["mean_change"] is None else f"{100 * c['mean_change']:+.1f}%"
            interval = ("—" if c["ci_low"] is None else f"{100 * c['ci_low']:+.1f}% to {100 * c['ci_high']:+.1f}%")
            lines.append(f"| {c['metric']} | {change} | {interval} | {_p(c['p_difference'])} | "
                         f"{_p(c['p_equivalence'])} | {c['verdict']} |")
        differs = [c for c in entry["per_epoch"] if c["verdict"] in ("better", "worse")]
        lines += ["", f"Per-epoch real/fake accuracy ({len(entry['per_epoch'])} comparisons, Holm-adjusted): "
                      + (", ".join(f"{c['metric']} {c['scope']} {c['verdict']}" for c in differs)
                         if differs else "no difference found."), ""]
    return "\n".join(lines)


def _p(p: float | None) -> str:
    return "—" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def _reusable(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("key") == json.loads(json.dumps(key)) else None


def _write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON under a temporary name, then rename."""
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(temporary, path)
