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
    labels_all = sorted({label for _, label in groups})
    palette = plt.cm.tab10.colors if len(labels_all) <= 10 else plt.cm.tab20.colors
    colour = {label: palette[i % len(palette)] for i, label in enumerate(labels_all)}
    legend: dict[str, object] = {}
    for panel, dataset in zip(panels, datasets):
        rows = sorted(label for d, label in groups if d == dataset)
        for label in rows:
            for key, name, style in zip(keys, labels, styles):
                steps, values = _mean_curve(groups[(dataset, label)], histories, key)
                if not steps:
                    continue
                drawn = True
                suffix = f" {name}" if len(keys) > 1 else ""
                (line,) = panel.plot(steps, values, style, color=colour[label], marker="o", markersize=3)
                legend.setdefault(f"{label}{suffix}", line)
        panel.set_title(dataset)
        panel.xaxis.get_major_locator().set_params(integer=True)
        panel.set_xlabel("epoch")
        panel.set_ylabel(ylabel)
        panel.grid(alpha=0.3)
    # One legend for all panels (a colour is one row label everywhere), right of the panels.
    ncol = 1 if len(legend) <= 24 else 2
    fig.subplots_adjust(top=0.86 if len(panels) <= 3 else 0.92, wspace=0.25, hspace=0.35)
    fig.legend(list(legend.values()), list(legend), loc="center left", bbox_to_anchor=(0.91, 0.5),
               fontsize=7, ncol=ncol, frameon=False)
    fig.suptitle(title)
    if drawn:
        fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path if drawn else None


def sample_strip(rows: list[tuple[str, list[tuple[int, Path]]]], title: str, path: Path,
                 tile: int = 160) -> Path | None:
    """One row per variant: its logged sample grids from early to late epochs, side by side.

    Composed with Pillow, not matplotlib: the grids are pasted as they were
    logged (scaled to ``tile`` pixels), which is fast for hundreds of them.
    """
    from PIL import Image, ImageDraw, ImageFont

    rows = [(label, frames) for label, frames in rows if frames]
    if not rows:
        return None
    font = ImageFont.load_default(size=14)
    caption_h, pad, title_h = 20, 8, 34
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = int(max(measure.textlength(label, font=font) for label, _ in rows)) + 2 * pad
    cols = max(len(frames) for _, frames in rows)
    width = label_w + cols * (tile + pad) + pad
    height = title_h + len(rows) * (tile + caption_h + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, pad), title, fill="black", font=ImageFont.load_default(size=18))
    for r, (label, frames) in enumerate(rows):
        top = title_h + r * (tile + caption_h + pad)
        draw.text((pad, top + caption_h + tile // 2 - 8), label, fill="black", font=font)
        for c, (epoch, file) in enumerate(frames):
            left = label_w + c * (tile + pad)
            draw.text((left, top), f"epoch {epoch}", fill="black", font=font)
            with Image.open(file) as image:
                canvas.paste(image.convert("RGB").resize((tile, tile), Image.NEAREST), (left, top + caption_h))
    canvas.save(path)
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
