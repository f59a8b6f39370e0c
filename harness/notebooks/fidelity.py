"""Does the harness's compiled step train like the notebooks' loop? ``run_fidelity(settings)``.

For each seed, one variant is trained twice on the same images in the same
order, with the same batch size and the same initial weights
(``keras.utils.set_random_seed(seed)`` before building G, then D, in both):

- ``harness``: ``harness.train.gan.GAN``'s compiled ``train_step`` under ``fit``,
  one epoch per call, as ``harness.train.run`` runs it;
- ``notebook``: ``harness.notebooks.bench.NotebookTrainer``, the notebooks' loop
  (``generator.predict``, ``discriminator.train_on_batch`` on the real then
  the fake batch, the combined model's ``train_on_batch``).

Noise and Dropout masks come from each loop's own random streams, so the two
differ as two seeds do; the question is whether they differ more. Runs of one
seed start from the same weights, so they are paired by seed. Per epoch, for
real_acc, fake_acc, d_loss and g_loss (the harness's definitions), and for the
final FID and KID (from the evaluator the runs use), a paired equivalence test
(TOST, ``harness.stats.compare_paired``) asks whether the harness's value lies
within ±``margin`` (declared, default 10%) of the notebook loop's: "equivalent"
when TOST rejects at alpha 0.05; "better"/"worse" (FID, KID) or "different"
(the others, which have no better side) when the paired t-test finds a
difference after Holm's correction within its family (all per-epoch values
together; the final scores together: 40 tests at alpha 0.05 would otherwise
call about two values apart by chance); else "inconclusive". Not finding a difference is not agreement:
only "equivalent" says the loops train alike, and with few seeds most values
stay inconclusive (hence at least 5 seeds by default).

Where the loops can differ by construction (documented in reports/fidelity/README.md):

- Keras 3 reads ``trainable`` when a step is first traced, not at compile:
  the notebooks' code trains D in the combined update unless D is frozen
  before that call (``combined_d``; see ``NotebookTrainer``). The harness
  updates only G's weights in the G step, like the notebooks under Keras 2.
- BatchNorm: the notebooks' fakes for the D update come from ``predict``
  (G's BatchNorm in inference mode) and the frozen D's BatchNorm runs in
  inference mode in the combined update; the harness uses batch statistics
  in both. Variants without BatchNorm (``animals_baseline``) are unaffected.
- Losses: the notebooks take the cross-entropy of D's sigmoid, clipped to
  [1e-7, 1 - 1e-7]; the harness of the logits. They differ only once D
  saturates (a notebook loss cannot exceed 16.1).

Each (loop, seed) is saved in ``<out>/runs/`` as it finishes (its numbers and
its generator); a re-run reuses those whose settings match, and only rescores
one whose evaluation settings changed. Output: ``fidelity.md`` (the tables),
``fidelity.json`` (every number) and ``fidelity.png`` (the trajectories,
mean and min-max band over seeds).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import flags
from harness.config import NOTEBOOK, RunConfig
from harness.data import load_dataset
from harness.errors import ConfigError
from harness.flags import fraction, positive, setting
from harness.notebooks.reference_loop import NotebookTrainer
from variants import resolve

# Keras, TensorFlow, matplotlib and the modules that load them (the evaluator, the
# pipeline, the GAN) are imported inside functions: the CLI imports this module to
# build its flags, and `--help`, `variants` and `datasets` must not load them.

LOOPS = ("harness", "notebook")
METRICS = ("real_acc", "fake_acc", "d_loss", "g_loss")  # compared per epoch
FINAL = ("fid", "kid")  # compared at the end
RECORDED = (*METRICS, "d_loss_real", "d_loss_fake")  # kept per epoch in the JSON
# The run settings the comparison takes as flags, and its own defaults for them.
RUN_FLAGS = NOTEBOOK  # the run settings whose role says the notebooks' loop takes them too
RUN_DEFAULTS = {"variant": "animals_baseline", "dataset": "horses", "epochs": 10}
ALPHA = 0.05  # the equivalence and difference tests' level
ALL = "all"  # --variant all: every preset that has a notebook loop, each in <out>/<preset>


def notebook_presets() -> tuple[str, ...]:
    """The presets the notebooks' loop can train: D updated on a real batch, then a fake one (split)."""
    from variants.presets import PRESETS

    return tuple(name for name, spec in PRESETS.items() if spec.d_update == "split")


@dataclass(frozen=True)
class FidelitySettings:
    """One comparison: the run both loops train, how many seeds, where the results go."""

    run: RunConfig = setting(kind=RunConfig, cli=False, help="what both loops train")
    seeds: int = setting(5, check=positive, help="seeds per loop: 0, 1, ... N-1 (5 or more for an "
                                                  "equivalence test that can pass)")
    margin: float = setting(0.10, check=fraction, help="equivalence margin: the loops are equivalent when the "
                                                       "harness's value is within ±margin (a fraction) of the "
                                                       "notebook loop's")
    out: str = setting("reports/fidelity", metavar="DIR",
                       help="where fidelity.md/.json/.png and each (loop, seed)'s results go")
    combined_d: str = setting("frozen", choices=NotebookTrainer.COMBINED_D,
                              help="D in the notebooks' combined update: frozen (the notebooks under Keras 2) "
                                   "or trainable (their code run unchanged under Keras 3)")
    notebook_fakes: str = setting("predict", choices=NotebookTrainer.FAKES,
                                  help="how the notebooks' loop makes D's fakes: predict (the notebooks: G's "
                                       "BatchNorm on moving statistics) or training (batch statistics, as the "
                                       "harness); only BatchNorm-in-G variants differ")
    fresh: bool = setting(False, help="retrain every (loop, seed) instead of reusing the results in --out")

    def __post_init__(self) -> None:
        flags.validate(self)
        if resolve(self.run.variant).d_update != "split":
            raise ConfigError(f"--variant {self.run.variant}: the notebooks' loop updates D on a real batch, then "
                              "on a fake one (d_update split); this variant uses one mixed batch, so there is "
                              "no notebook loop to compare with. Pick a split variant (e.g. animals_baseline).")


def run_fidelity(settings: FidelitySettings, log=print) -> dict[str, Any]:
    """Train both loops for every seed (reusing finished ones), compare them and write the outputs.

    Returns the comparison (what ``fidelity.json`` holds) with ``files``, the
    paths written.
    """
    import keras
    import tensorflow as tf

    from harness.measure.evaluator import make_evaluator

    # --- the variant, the data, the evaluator -----------------------------------------
    config = settings.run.resolved()
    spec = resolve(config.variant).replace(**config.overrides)
    dataset = load_dataset(config.dataset, image_size=config.image_size, max_images=config.max_images,
                           min_images=config.batch_size)
    spec = spec.for_image(dataset.images.shape[1], dataset.images.shape[3])
    if config.width != 1.0:
        spec = spec.scaled(config.width)
    out = Path(settings.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    evaluator = make_evaluator(
        dataset_key=f"{dataset.source}:{dataset.name}:train:{spec.image_size}:{dataset.fingerprint}",
        reference_images=dataset.images, n_samples=config.eval_samples, backbone=config.backbone,
        inception_path=config.inception, log=log)
    if evaluator.warning:
        log(f"warning: {evaluator.warning}")
    steps = len(dataset.images) // config.batch_size
    log(f"fidelity: {config.variant} on {config.dataset} ({len(dataset.images)} images, {steps} batches of "
        f"{config.batch_size}, {config.epochs} epochs), {settings.seeds} seed(s) per loop -> {out}")
    common = {"variant": config.variant, "spec": spec.to_params(), "data_fingerprint": dataset.fingerprint,
              "image_size": spec.image_size, "epochs": config.epochs, "batch_size": config.batch_size,
              "tensorflow": tf.__version__, "keras": keras.__version__}
    from harness.train.precision import resolve as resolve_precision

    # Only the harness's step has a precision; the notebooks' loop is the float32 reference.
    precision = resolve_precision(config.precision, spec, config.variant, config.batch_size, log).name
    log(f"harness loop precision: {precision}")
    mixed = {"precision": precision} if precision != "float32" else {}  # float32 records keep their old key
    fakes = {"fakes": settings.notebook_fakes} if settings.notebook_fakes != "predict" else {}  # so do predict's
    train_keys = {"harness": {**common, "loop": "harness", "xla": config.xla, **mixed},
                  "notebook": {**common, "loop": "notebook", "combined_d": settings.combined_d,
                               **fakes}}

    # --- train each (loop, seed), alternating loops, reusing what is saved ----------------
    images = tf.data.Dataset.from_tensor_slices(dataset.images)
    results: dict[str, list[dict[str, Any]]] = {loop: [] for loop in LOOPS}
    for seed in range(settings.seeds):
        for loop in LOOPS:
            eval_key = {**evaluator.params(), "eval_seed": str(seed)}
            saved = out / "runs" / f"{loop}-seed{seed}.json"
            record = None if settings.fresh else _reusable(saved, train_keys[loop])
            if record is not None and record["eval_key"] == eval_key:
                log(f"{loop} seed {seed}: reused {saved}")
            else:
                if record is not None:  # trained with these settings; only the scoring changed
                    generator = keras.saving.load_model(out / "runs" / record["generator"], compile=False,
                                                        safe_mode=True)
                    what = "rescored"
                else:
                    record, generator = _train(loop, spec, images, config, settings, seed, log, precision)
                    record["train_key"] = train_keys[loop]
                    record["generator"] = f"{loop}-seed{seed}.keras"
                    generator.save(out / "runs" / record["generator"])
                    what = f"trained {config.epochs} epochs in {record['train_seconds']:.0f} s"
                final = evaluator.evaluate(generator, latent_dim=spec.latent_dim, seed=seed)
                record.update(final={k: final[k] for k in ("fid", "kid", "kid_std", "is", "is_std")},
                              eval_key=eval_key)
                _write_json(saved, record)
                last = record["epochs"][-1]
                log(f"{loop} seed {seed}: {what}; last epoch "
                    + " ".join(f"{k} {last[k]:.3f}" for k in METRICS)
                    + f"; FID {record['final']['fid']:.2f} KID {record['final']['kid']:.4g} -> {saved}")
            results[loop].append(record)

    # --- compare and write ---------------------------------------------------------------
    comparison = compare(results, config.epochs, settings.margin)
    comparison["settings"] = {"variant": config.variant, "dataset": config.dataset, "images": len(dataset.images),
                              "epochs": config.epochs, "batch_size": config.batch_size, "width": config.width,
                              "seeds": settings.seeds, "combined_d": settings.combined_d,
                              "notebook_fakes": settings.notebook_fakes,
                              "evaluation": evaluator.params(), "margin": settings.margin, "alpha": ALPHA}
    comparison["runs"] = results
    files = [out / "fidelity.json", out / "fidelity.md", out / "fidelity.png"]
    _write_json(files[0], comparison)
    files[1].write_text(render_markdown(comparison))
    plot(results, comparison["settings"], files[2])
    comparison["files"] = [str(f) for f in files]
    return comparison


# --- the two loops ------------------------------------------------------------------------
def _train(loop: str, spec, images, config: RunConfig, settings: FidelitySettings, seed: int, log,
           precision: str = "float32"):
    """Train one loop for ``config.epochs`` (the harness's in ``precision``); return ({"epochs": [...],
    "train_seconds"}, its generator as float32 Keras)."""
    import keras

    from harness.data.pipeline import epoch_batches
    from harness.train.gan import GAN

    keras.utils.set_random_seed(seed)  # the same initial weights in both loops (G built first, then D)
    if loop == "harness":
        trainer = GAN(spec, seed=seed, precision=precision)
        trainer.compile(jit_compile={"auto": "auto", "on": True, "off": False}[config.xla])
    else:
        trainer = NotebookTrainer(spec, config.batch_size, seed=seed, combined_d=settings.combined_d,
                                  fakes=settings.notebook_fakes)
        generator = trainer.g
    epochs, start = [], time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        batches = epoch_batches(images, config.batch_size, seed=seed, epoch=epoch)  # same order in both
        if loop == "harness":
            history = trainer.fit(batches, epochs=1, verbose=0, shuffle=False).history
            metrics = {k: float(history[k][-1]) for k in RECORDED}
        else:
            metrics = {k: v for k, v in trainer.train_epoch(batches.as_numpy_iterator()).items() if k in RECORDED}
        epochs.append({"epoch": epoch, **metrics})
        log(f"  {loop} seed {seed} epoch {epoch}/{config.epochs}: "
            + " ".join(f"{k} {metrics[k]:.3f}" for k in METRICS))
    if loop == "harness":
        generator = trainer.float32_generator()
    return {"loop": loop, "seed": seed, "epochs": epochs, "train_seconds": time.perf_counter() - start}, generator


def _reusable(path: Path, train_key: dict[str, Any]) -> dict[str, Any] | None:
    """The saved record at ``path`` when it was trained with ``train_key`` and is complete, else None."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    complete = isinstance(record, dict) and (path.parent / str(record.get("generator"))).is_file()
    return record if complete and record.get("train_key") == json.loads(json.dumps(train_key)) else None


# --- the comparison -----------------------------------------------------------------------
def equivalence(harness: list[float], notebook: list[float], metric: str, margin: float = 0.10) -> dict[str, Any]:
    """The two loops' values of one quantity over seeds (paired by position): means, stds, and the paired
    test's change (harness - notebook, a fraction of the notebook's mean), interval, p-values and verdict.

    A seed with a non-finite value on either side, or fewer than 2 seeds, leaves the verdict
    "inconclusive" with the reason (``harness.stats.compare_paired``'s rule).
    """
    return _row(_paired(harness, notebook, metric, margin), harness, notebook)


def _paired(harness: list[float], notebook: list[float], metric: str, margin: float, scope: str = ""):
    from harness.stats import compare_paired
    from harness.stats.design import lower_is_better

    return compare_paired([float(v) for v in harness], [float(v) for v in notebook], arm="harness",
                          base="notebook", metric=metric, lower_is_better=bool(lower_is_better(metric)),
                          margin=margin, alpha=ALPHA, scope=scope)


def _row(c, harness: list[float], notebook: list[float]) -> dict[str, Any]:
    """One compared value as the tables and the JSON hold it ("different" where the metric has no better side)."""
    from harness.stats.design import lower_is_better

    a_, b_ = np.asarray(harness, dtype=np.float64), np.asarray(notebook, dtype=np.float64)
    verdict = "different" if lower_is_better(c.metric) is None and c.verdict in ("better", "worse") else c.verdict
    return {"harness_mean": _stat(np.mean, a_), "harness_std": _std(a_), "notebook_mean": _stat(np.mean, b_),
            "notebook_std": _std(b_), "n": c.n, "change": c.mean_change, "ci_low": c.ci_low, "ci_high": c.ci_high,
            "p_difference": c.p_difference, "p_adjusted": c.p_adjusted, "family_size": c.family_size,
            "p_equivalence": c.p_equivalence, "verdict": verdict, "reason": c.reason}


def _std(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) >= 2 else math.nan


def _stat(fn, values: np.ndarray) -> float:
    return float(fn(values)) if len(values) else math.nan


def compare(results: dict[str, list[dict[str, Any]]], epochs: int, margin: float = 0.10) -> dict[str, Any]:
    """Per epoch and metric, and for the final scores: the loops' paired comparison over seeds.

    Two families, each Holm-adjusted before a value is called apart (different, better or worse): every
    per-epoch value (metrics x epochs), and the final scores. Equivalence (TOST) is judged value by value.
    """
    from harness.stats import adjust_family

    epoch_keys = [(metric, e) for metric in METRICS for e in range(1, epochs + 1)]
    epoch_values = {(metric, e): [[r["epochs"][e - 1][metric] for r in results[loop]] for loop in LOOPS]
                    for metric, e in epoch_keys}
    final_values = {key: [[r["final"][key] for r in results[loop]] for loop in LOOPS] for key in FINAL}
    by_epoch = adjust_family([_paired(*epoch_values[k], k[0], margin, f"epoch {k[1]}") for k in epoch_keys])
    by_final = adjust_family([_paired(*final_values[key], key, margin) for key in FINAL])
    per_epoch = {metric: [] for metric in METRICS}
    for (metric, e), c in zip(epoch_keys, by_epoch):
        per_epoch[metric].append({"epoch": e, **_row(c, *epoch_values[(metric, e)])})
    final = {key: _row(c, *final_values[key]) for key, c in zip(FINAL, by_final)}
    cells = [row for rows in per_epoch.values() for row in rows] + list(final.values())
    named = [(f"{metric} epoch {row['epoch']}", row) for metric, rows in per_epoch.items() for row in rows]
    named += list(final.items())
    return {"per_epoch": per_epoch, "final": final,
            "summary": {"cells": len(cells),
                        "equivalent": sum(c["verdict"] == "equivalent" for c in cells),
                        "apart": [name for name, row in named if row["verdict"] in ("better", "worse", "different")],
                        "inconclusive": sum(c["verdict"] == "inconclusive" for c in cells),
                        "families": {"per_epoch": len(epoch_keys), "final": len(FINAL)}}}


# --- outputs --------------------------------------------------------------------------------
def render_markdown(comparison: dict[str, Any]) -> str:
    """The tables: one per metric (rows: epochs), then the final FID and KID."""
    s = comparison["settings"]
    summary = comparison["summary"]
    lines = ["# Fidelity: the harness's step against the notebooks' loop", "",
             f"`{s['variant']}` on `{s['dataset']}` ({s['images']} images, batch {s['batch_size']}, "
             f"{s['epochs']} epochs, width {s['width']}), {s['seeds']} seed(s) per loop; notebook loop with "
             f"D {s['combined_d']} in the combined update"
             + ("" if s.get("notebook_fakes", "predict") == "predict" else
                f" and D's fakes made by G in {s['notebook_fakes']} mode (BatchNorm on batch statistics)")
             + ". Mean ± std over seeds; change: the mean paired "
             f"difference (harness - notebook) as a % of the notebook's mean, with its 95% interval; "
             f"equivalent when TOST within ±{100 * s['margin']:g}% rejects at alpha {s['alpha']:g}, "
             f"different (better/worse for FID/KID) when the paired t-test does after Holm's correction within its "
             f"family (the {summary['families']['per_epoch']} per-epoch values; the "
             f"{summary['families']['final']} final scores), else inconclusive. FID/KID: {s['evaluation'].get('eval_backbone')} "
             f"(md5 {s['evaluation'].get('eval_backbone_md5', '?')[:8]}), {s['evaluation'].get('eval_n_real')} "
             f"real / {s['evaluation'].get('eval_n_fake')} generated images.", "",
             _verdict(summary), ""]
    for metric, rows in comparison["per_epoch"].items():
        lines += _table(metric, "epoch", [(str(r["epoch"]), r) for r in rows])
    lines += _table("final scores", "", [(key.upper(), row) for key, row in comparison["final"].items()])
    return "\n".join(lines)


def _verdict(summary: dict[str, Any]) -> str:
    text = f"**{summary['equivalent']} of {summary['cells']} values equivalent**"
    text += f"; apart: {', '.join(summary['apart'])}" if summary["apart"] else ""
    return text + f"; {summary['inconclusive']} inconclusive (neither shown)."


def _table(title: str, first: str, rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    lines = [f"## {title}", "", f"| {first} | harness | notebook | change % (95% CI) | p | Holm p | TOST p | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for label, r in rows:
        change = ("—" if r["change"] is None else f"{100 * r['change']:+.1f}"
                  + ("" if r["ci_low"] is None else f" ({100 * r['ci_low']:+.1f} to {100 * r['ci_high']:+.1f})"))
        tost = "—" if r["p_equivalence"] is None else f"{r['p_equivalence']:.3f}"
        p, holm = ("—" if r.get(k) is None else f"{r[k]:.3f}" for k in ("p_difference", "p_adjusted"))
        verdict = r["verdict"] + (f" ({r['reason']})" if r["reason"] and r["change"] is None else "")
        lines.append(f"| {label} | {_pm(r['harness_mean'], r['harness_std'])} | "
                     f"{_pm(r['notebook_mean'], r['notebook_std'])} | {change} | {p} | {holm} | {tost} | {verdict} |")
    return lines + [""]


def _places(std: float) -> int:
    """Decimal places that keep a std's first significant digit (its first two when they read 10-35)."""
    if not math.isfinite(std) or std <= 0:
        return 3
    exponent = math.floor(math.log10(std))
    digits = 2 if std / 10 ** exponent < 3.5 else 1
    return min(6, max(0, digits - 1 - exponent))


def _num(value: float, places: int) -> str:
    if not math.isfinite(value):
        return "—"
    text = f"{value:.{places}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def _pm(mean: float, std: float) -> str:
    places = _places(std)
    return _num(mean, places) if not math.isfinite(std) else f"{_num(mean, places)} ± {_num(std, places)}"


def plot(results: dict[str, list[dict[str, Any]]], settings: dict[str, Any], path: Path) -> Path:
    """The four per-epoch metrics of both loops: mean over seeds, with the min-max band."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    for panel, metric in zip(axes.flat, METRICS):
        for loop, colour in zip(LOOPS, ("tab:blue", "tab:orange")):
            values = np.array([[e[metric] for e in r["epochs"]] for r in results[loop]], dtype=np.float64)
            epochs = np.arange(1, values.shape[1] + 1)
            panel.plot(epochs, values.mean(axis=0), color=colour, marker="o", markersize=3,
                       label=f"{loop} ({len(values)} seeds)")
            panel.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=colour, alpha=0.2)
        panel.set_title(metric)
        panel.set_xlabel("epoch")
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        panel.grid(alpha=0.3)
    axes.flat[0].legend()
    fig.suptitle(f"{settings['variant']} on {settings['dataset']}: harness step vs notebook loop "
                 "(mean over seeds, band min-max)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON (NaN and inf as null) under a temporary name, then rename."""
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    temporary.write_text(json.dumps(_finite(data), indent=2, sort_keys=True))
    os.replace(temporary, path)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
