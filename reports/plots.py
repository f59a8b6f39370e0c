"""The report's figures as PNG files (matplotlib, Agg backend: no display needed).

Every curve is drawn from logged per-epoch histories (mean over a row's
seeds at each epoch); sample strips are the logged sample grids themselves.
Each function returns the written path, or None when there is nothing to draw.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from reports.collect import RunRecord
from reports.study_store import StudyRecord

History = dict[str, dict[str, list[tuple[int, float]]]]  # run id -> key -> [(step, value)]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt



def _mean_curve(runs: list[RunRecord], histories: History, key: str) -> tuple[list[int], list[float]]:
    by_step: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        for step, value in histories.get(run.run_id, {}).get(key, []):
            if math.isfinite(value):
                by_step[step].append(value)
    steps = sorted(by_step)
    return steps, [float(np.mean(by_step[s])) for s in steps]


def _panels(plt, count: int):
    cols = min(3, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    flat = list(axes.flat)
    for extra in flat[count:]:
        extra.set_visible(False)
    return fig, flat


def curves(groups: dict[tuple[str, str], list[RunRecord]], histories: History,
           keys: tuple[str, ...], labels: tuple[str, ...], ylabel: str, title: str, path: Path) -> Path | None:
    """Per dataset, one colour per row label; ``keys`` share the colour with different line styles."""
    datasets = sorted({dataset for dataset, _ in groups})
    if not any(histories.get(r.run_id, {}).get(k) for runs in groups.values() for r in runs for k in keys):
        return None
    drawn = False
    plt = _pyplot()
    fig, panels = _panels(plt, max(1, len(datasets)))
    styles = ("-", "--", ":", "-.")
    for panel, dataset in zip(panels, datasets):
        rows = sorted(label for d, label in groups if d == dataset)
        colours = plt.cm.tab10(np.linspace(0, 1, 10))
        for c, label in enumerate(rows):
            for key, name, style in zip(keys, labels, styles):
                steps, values = _mean_curve(groups[(dataset, label)], histories, key)
                if not steps:
                    continue
                drawn = True
                suffix = f" {name}" if len(keys) > 1 else ""
                panel.plot(steps, values, style, color=colours[c % 10], marker="o", markersize=3,
                           label=f"{label}{suffix} (n={len(groups[(dataset, label)])})")
        panel.set_title(dataset)
        panel.xaxis.get_major_locator().set_params(integer=True)
        panel.set_xlabel("epoch")
        panel.set_ylabel(ylabel)
        panel.grid(alpha=0.3)
        if panel.lines:
            panel.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    if drawn:
        fig.savefig(path, dpi=90)
    plt.close(fig)
    return path if drawn else None


def sample_strip(rows: list[tuple[str, list[tuple[int, Path]]]], title: str, path: Path) -> Path | None:
    """One row per variant: its logged sample grids from early to late epochs."""
    from PIL import Image

    rows = [(label, frames) for label, frames in rows if frames]
    if not rows:
        return None
    plt = _pyplot()
    cols = max(len(frames) for _, frames in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.4 * cols, 2.6 * len(rows)), squeeze=False)
    for r, (label, frames) in enumerate(rows):
        for c in range(cols):
            panel = axes[r][c]
            panel.axis("off")
            if c >= len(frames):
                continue
            epoch, file = frames[c]
            with Image.open(file) as image:
                panel.imshow(np.asarray(image.convert("RGB")))
            panel.set_title(f"{label}\nepoch {epoch}" if c == 0 else f"epoch {epoch}", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def study_curves(studies: list[StudyRecord], path: Path) -> Path | None:
    """Best objective so far versus number of trials, one panel per class, one line per variant."""
    studies = [s for s in studies if any(v is not None for _, v in s.curve)]
    if not studies:
        return None
    plt = _pyplot()
    datasets = sorted({s.dataset or s.name for s in studies})
    fig, panels = _panels(plt, len(datasets))
    for panel, dataset in zip(panels, datasets):
        for s in sorted((s for s in studies if (s.dataset or s.name) == dataset), key=lambda s: s.name):
            points = [(n, v) for n, v in s.curve if v is not None]
            panel.step([n for n, _ in points], [v for _, v in points], where="post", marker="o",
                       markersize=3, label=f"{s.variant or s.name} ({len(s.curve)} trials)")
        panel.set_title(dataset)
        panel.xaxis.get_major_locator().set_params(integer=True)
        panel.set_xlabel("trials")
        panel.set_ylabel(f"best {studies[0].objective} so far")
        panel.grid(alpha=0.3)
        panel.legend(fontsize=7)
    fig.suptitle("How much tuning each variant needed")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
