"""The report's figures as PNG files (matplotlib, Agg backend: no display needed).

Every curve is drawn from logged per-epoch histories: the line is the mean
over a row's seeds at each epoch and the shaded band their min-max, so the
spread over seeds is visible. Lines carry their names at their right ends
(no legend to decode), and quantities drawn together differ in colour and
marker, not only in dash. Figures are drawn at 100 dpi and at most
``WIDTH_IN`` inches wide, so the HTML page (1200 px of content) shows them at
their own size; they carry no title of their own, since the report's
heading above each says what it shows. Sample strips are the logged sample
grids themselves. Each function returns the written path, or None when there
is nothing to draw.
"""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from pathlib import Path

import numpy as np

from reports.collect import RunRecord
from reports.study_store import StudyRecord

History = dict[str, dict[str, list[tuple[int, float]]]]  # run id -> key -> [(step, value)]

DPI = 100
WIDTH_IN = 11.6  # 1160 px: within the HTML page's 1200 px column
FONT = 10
# Colour-blind-safe pairs and a cycle (Okabe-Ito), each with its own marker.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*")

# The one arm -> (colour, marker) map: an arm keeps its colour in every figure of a report.
# ``use_arm_order`` (called once per report) fixes the order; an arm not listed takes the next free pair.
_ARM_ORDER: list[str] = []


def use_arm_order(arms: list[str]) -> None:
    """Give ``arms`` the colours in this order for the figures that follow (e.g. the plan's arms)."""
    _ARM_ORDER[:] = list(dict.fromkeys(arms))


def arm_style(arm: str) -> tuple[str, str]:
    """The (colour, marker) of ``arm`` in every figure; a row label ``variant (...)`` takes its variant's."""
    key = arm.split(" (", 1)[0]
    if key not in _ARM_ORDER:
        _ARM_ORDER.append(key)
    i = _ARM_ORDER.index(key)
    return COLOURS[i % len(COLOURS)], MARKERS[i % len(MARKERS)]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": FONT, "axes.titlesize": FONT, "axes.labelsize": FONT,
                         "xtick.labelsize": FONT - 1, "ytick.labelsize": FONT - 1})
    return plt


def seed_band(runs: list[RunRecord], histories: History, key: str, *, g_steps: bool = False
              ) -> tuple[list[int], list[float], list[float], list[float]]:
    """Per logged epoch: the mean, min and max of ``key`` over ``runs`` (finite values only).

    g_steps: x is the generator steps done by the end of the epoch (epoch x the
    run's logged ``steps_per_epoch``: one generator update per batch) instead of the epoch.
    """
    by_step: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        per_epoch = steps_per_epoch(run) if g_steps else 1
        for step, value in histories.get(run.run_id, {}).get(key, []):
            if math.isfinite(value):
                by_step[step * per_epoch].append(value)
    steps = sorted(by_step)
    return (steps, [float(np.mean(by_step[s])) for s in steps], [min(by_step[s]) for s in steps],
            [max(by_step[s]) for s in steps])


def steps_per_epoch(run: RunRecord) -> int | None:
    """The generator steps of one of ``run``'s epochs (its ``steps_per_epoch`` param), or None when not logged."""
    try:
        return int(run.params["steps_per_epoch"])
    except (KeyError, TypeError, ValueError):
        return None


def _panels(plt, count: int, cols: int, height: float, *, wspace: float = 0.25, hspace: float = 0.45,
            left: float = 0.08):
    """A figure of ``count`` panels, ``cols`` per row, with a fixed margin (in inches) above and below."""
    cols = max(1, min(cols, count))
    rows = math.ceil(count / cols)
    width = WIDTH_IN if cols > 1 else WIDTH_IN * 0.6
    fig, axes = plt.subplots(rows, cols, figsize=(width, height * rows + 0.6), squeeze=False)
    fig.subplots_adjust(left=left, right=0.98, top=1 - 0.35 / fig.get_figheight(), bottom=0.5 / fig.get_figheight(),
                        wspace=wspace, hspace=hspace)
    flat = list(axes.flat)
    for extra in flat[count:]:
        extra.set_visible(False)
    return fig, flat[:count]


def _save(fig, path: Path) -> None:
    # Tight: nothing outside the figure (long tick labels, end labels) is cut off.
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.15)


def _draw(panel, steps, mean, low, high, colour: str, marker: str) -> None:
    panel.fill_between(steps, low, high, color=colour, alpha=0.18, linewidth=0)
    panel.plot(steps, mean, color=colour, marker=marker, markersize=5, linewidth=1.8)


def _label_ends(panel, ends: list[tuple[float, float, str, str]]) -> None:
    """Write each line's name right of its last point, nudged apart so no two overlap."""
    if not ends:
        return
    to_px, to_data = panel.transData.transform, panel.transData.inverted().transform
    gap = FONT * 1.35 * DPI / 72  # one text line, in pixels
    placed = sorted((([*to_px((x, y))], text, colour) for x, y, text, colour in ends),
                    key=lambda item: item[0][1])  # bottom to top
    for i in range(1, len(placed)):  # push upwards until each clears the one below
        placed[i][0][1] = max(placed[i][0][1], placed[i - 1][0][1] + gap)
    top = panel.transAxes.transform((0, 1))[1]
    overflow = placed[-1][0][1] - top
    for (point, text, colour) in placed:
        x, y = to_data((point[0], point[1] - max(0.0, overflow)))
        panel.annotate(text, (x, y), xytext=(7, 0), textcoords="offset points", va="center", ha="left",
                       color=colour, fontsize=FONT - 1, fontweight="bold", annotation_clip=False)


def _room_for_labels(panel, steps: list[int], labels: list[str]) -> None:
    """Widen the x range to the right so the end labels sit inside the panel."""
    first, last = min(steps), max(steps)
    span = max(1, last - first)
    longest = max((len(label) for label in labels), default=4)
    panel.set_xlim(first - 0.04 * span, last + span * min(1.2, 0.045 * longest + 0.08))
    # Ticks only where values can be: never an epoch past the last one.
    ticks = sorted(set(steps))
    if len(ticks) <= 12:
        panel.set_xticks(ticks)
    else:
        panel.xaxis.get_major_locator().set_params(integer=True)


def pair_curves(groups: dict[tuple[str, str], list[RunRecord]], histories: History, keys: tuple[str, str],
                names: tuple[str, str], ylabel: str, path: Path,
                ylim: tuple[float, float] | None = None) -> Path | None:
    """One small panel per (dataset, row label) with two quantities (e.g. real and fake accuracy)."""
    cells = [(dataset, label) for dataset, label in sorted(groups)
             if any(histories.get(r.run_id, {}).get(k) for r in groups[(dataset, label)] for k in keys)]
    if not cells:
        return None
    plt = _pyplot()
    fig, panels = _panels(plt, len(cells), cols=3, height=2.9, wspace=0.28, hspace=0.55, left=0.07)
    values, ends = [], []
    for panel, (dataset, label) in zip(panels, cells):
        runs = groups[(dataset, label)]
        drawn = []
        for i, (key, name) in enumerate(zip(keys, names)):
            steps, mean, low, high = seed_band(runs, histories, key)
            if steps:
                _draw(panel, steps, mean, low, high, COLOURS[i], MARKERS[i])
                drawn.append((steps, mean, name, COLOURS[i]))
                values += low + high
        heading = f"{dataset}: {label} (n={len(runs)})"
        panel.set_title("\n".join(textwrap.wrap(heading, 44)), loc="left")
        panel.set_xlabel("epoch")
        panel.set_ylabel(ylabel)
        panel.grid(alpha=0.3)
        _room_for_labels(panel, [s for steps, *_ in drawn for s in steps], list(names))
        if ylim:
            panel.set_ylim(*ylim)
        ends.append([(steps[-1], mean[-1], name, colour) for steps, mean, name, colour in drawn])
    if not ylim and values:  # one y range for every panel, so heights compare across them
        pad = 0.05 * (max(values) - min(values) or 1.0)
        for panel in panels:
            panel.set_ylim(min(values) - pad, max(values) + pad)
    for panel, panel_ends in zip(panels, ends):  # after the y range is final: labels are placed in pixels
        _label_ends(panel, panel_ends)
    _save(fig, path)
    plt.close(fig)
    return path


def variant_curves(groups: dict[tuple[str, str], list[RunRecord]], histories: History, key: str,
                   ylabel: str, path: Path) -> Path | None:
    """One panel per dataset; one line (mean) and band (min-max over seeds) per row label.

    x is generator steps when every run logged its ``steps_per_epoch`` (arms
    with other batch sizes or data then share one axis), else the epoch.
    """
    datasets = sorted({d for d, label in groups
                       if any(histories.get(r.run_id, {}).get(key) for r in groups[(d, label)])})
    if not datasets:
        return None
    g_steps = all(steps_per_epoch(r) for runs in groups.values() for r in runs)
    plt = _pyplot()
    fig, panels = _panels(plt, len(datasets), cols=2, height=3.8)
    for panel, dataset in zip(panels, datasets):
        labels = sorted(label for d, label in groups if d == dataset)
        ends, all_steps = [], []
        for i, label in enumerate(labels):
            runs = groups[(dataset, label)]
            steps, mean, low, high = seed_band(runs, histories, key, g_steps=g_steps)
            if not steps:
                continue
            colour, marker = arm_style(label)
            _draw(panel, steps, mean, low, high, colour, marker)
            ends.append((steps[-1], mean[-1], f"{label} (n={len(runs)})", colour))
            all_steps += steps
        panel.set_title(dataset, loc="left")
        panel.set_xlabel("generator steps" if g_steps else "epoch")
        panel.set_ylabel(ylabel)
        panel.grid(alpha=0.3)
        _room_for_labels(panel, all_steps, [text for *_, text, _ in ends])
        _label_ends(panel, ends)
    _save(fig, path)
    plt.close(fig)
    return path


def seed_points(groups: dict[tuple[str, str], list[RunRecord]], key: str, ylabel: str, path: Path,
                order: list[str] | None = None) -> Path | None:
    """One panel per dataset: each row label's final ``key`` per seed as points, the mean as a bar.

    Each panel has its own y range (FID scales differ by class). Points of
    one variant sit side by side in seed order, each named by its seed when
    there are few; ``order`` (row labels) puts e.g. the baseline first.
    """
    cells = {(d, label): [r for r in runs if r.seed is not None and _finite(r.metrics.get(key))]
             for (d, label), runs in groups.items()}
    datasets = sorted({d for (d, _), runs in cells.items() if runs})
    if not datasets:
        return None
    rank = {label: i for i, label in enumerate(order or [])}
    plt = _pyplot()
    labels_per = max(len([1 for (d, _), runs in cells.items() if d == dataset and runs]) for dataset in datasets)
    fig, panels = _panels(plt, len(datasets), cols=2, height=3.2 + 0.12 * labels_per, wspace=0.22, hspace=0.7)
    for panel, dataset in zip(panels, datasets):
        labels = sorted((label for (d, label), runs in cells.items() if d == dataset and runs),
                        key=lambda label: (rank.get(label, len(rank)), label))
        for x, label in enumerate(labels):
            runs = sorted(cells[(dataset, label)], key=lambda r: r.seed)
            values = [float(r.metrics[key]) for r in runs]
            colour, marker = arm_style(label)
            offsets = np.linspace(-0.18, 0.18, len(runs)) if len(runs) > 1 else np.zeros(1)
            panel.scatter(x + offsets, values, color=colour, marker=marker, s=34, zorder=3, edgecolor="white",
                          linewidth=0.6)
            panel.hlines(float(np.mean(values)), x - 0.3, x + 0.3, color=colour, linewidth=2.2, zorder=2)
            if len(runs) <= 5:
                for dx, value, run in zip(offsets, values, runs):
                    panel.annotate(f"s{run.seed}", (x + dx, value), xytext=(0, 5), textcoords="offset points",
                                   ha="center", va="bottom", fontsize=FONT - 3, color="#555", zorder=4,
                                   bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.8})
        panel.set_xticks(range(len(labels)))
        panel.set_xticklabels([f"{label}\n(n={len(cells[(dataset, label)])})" for label in labels],
                              rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
        panel.set_xlim(-0.6, len(labels) - 0.4)
        panel.margins(y=0.15)
        panel.set_title(dataset, loc="left")
        panel.set_ylabel(ylabel)
        panel.grid(axis="y", alpha=0.3)
    _save(fig, path)
    plt.close(fig)
    return path


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


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
    fig, panels = _panels(plt, len(datasets), cols=2, height=3.8)
    for panel, dataset in zip(panels, datasets):
        ends, all_steps = [], []
        for i, s in enumerate(sorted((s for s in studies if (s.dataset or s.name) == dataset), key=lambda s: s.name)):
            points = [(n, v) for n, v in s.curve if v is not None]
            colour, marker = arm_style(s.variant or s.name)
            panel.step([n for n, _ in points], [v for _, v in points], where="post", marker=marker,
                       markersize=5, color=colour, linewidth=1.8)
            ends.append((points[-1][0], points[-1][1], f"{s.variant or s.name} ({len(s.curve)} trials)", colour))
            all_steps += [n for n, _ in points]
        panel.set_title(dataset, loc="left")
        panel.set_xlabel("trials")
        panel.set_ylabel(f"best {studies[0].objective} so far")
        panel.grid(alpha=0.3)
        _room_for_labels(panel, all_steps, [text for *_, text, _ in ends])
        _label_ends(panel, ends)
    _save(fig, path)
    plt.close(fig)
    return path


def performance_profiles(scores: dict[str, np.ndarray], base: str, metric: str, path: Path,
                         lower_is_better: bool = True) -> Path | None:
    """One step line per arm: the share of its runs better than each threshold (a fraction of the base's mean).

    ``scores`` maps arm -> its runs' values divided by the base's class mean
    (pooled over classes); the base's own line is drawn too when given.
    """
    from harness.stats import performance_profile

    scores = {arm: np.asarray(v, dtype=float) for arm, v in scores.items() if len(v)}
    if not scores:
        return None
    every = np.concatenate(list(scores.values()))
    thresholds = np.linspace(float(every.min()) * 0.98, float(every.max()) * 1.02, 200)
    plt = _pyplot()
    fig, (panel,) = _panels(plt, 1, cols=1, height=3.8)
    for arm, values in scores.items():
        colour, _ = arm_style(arm)
        share = performance_profile(values, thresholds, lower_is_better)
        panel.step(thresholds, share, where="post", color=colour, linewidth=1.8)
    panel.axvline(1.0, color="#888", linewidth=1, linestyle=":")
    panel.set_xlabel(f"threshold: {metric.upper()} as a fraction of {base}'s class mean")
    panel.set_ylabel(f"share of runs {'below' if lower_is_better else 'above'}")
    panel.set_ylim(-0.03, 1.03)
    panel.grid(alpha=0.3)
    panel.legend([plt.Line2D([], [], color=arm_style(a)[0]) for a in scores], list(scores), fontsize=FONT - 1,
                 loc="best")
    _save(fig, path)
    plt.close(fig)
    return path
