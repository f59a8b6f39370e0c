"""What ``campaign --status`` and ``campaign --dry-run`` print: the grid, and the time left."""

from __future__ import annotations

from collections import Counter

from harness.campaign.plan import Plan
from harness.campaign.queue import CellQueue
from harness.campaign.state import CellState, cell_states, cell_work, eta_seconds, seconds_per_image_epoch
from harness.data import load_dataset
from harness.store.urls import redact
from harness.train.progress import duration

SHORT = {"FINISHED": "done", "CHANGED": "changed", "RUNNING": "running", "KILLED": "stopped",
         "FAILED": "FAILED", "MISSING": "-"}
COUNTED = {"FINISHED": "finished", "CHANGED": "changed", "RUNNING": "running", "KILLED": "stopped",
           "FAILED": "failed", "MISSING": "missing"}


def status_text(plan: Plan, url: str | None = None) -> str:
    """The campaign's grid (rows dataset x variant, columns seeds), counts and ETA."""
    states = cell_states(plan)
    holders, waiting, queue = {}, set(), None
    if url is not None:
        try:
            queue = CellQueue.existing(plan.name, url)  # only read: a missing queue is not created
            if queue is not None:
                holders, waiting = queue.holders(), queue.waiting()
        except Exception:  # the queue is optional here: MLflow alone says where cells stand
            queue = None
    counts = Counter(shown_status(s, holders, waiting, queue is not None) for s in states)
    lines = [f"campaign {plan.name} ({plan.path}): {len(states)} cells: "
             + ", ".join(f"{counts[k]} {COUNTED[k]}" for k in COUNTED if counts[k]) + eta(plan, states)]
    width = max(len(f"{d} {v}") for d in plan.datasets for v in plan.variants)
    lines.append(" " * (width + 2) + "".join(f"{'seed ' + str(s):<22}" for s in plan.seeds))
    by_key = {s.cell.key: s for s in states}
    for dataset in plan.datasets:
        for variant in plan.variants:
            row = [cell_text(by_key[f"{dataset}/{variant}/s{seed}"], holders, waiting, queue is not None)
                   for seed in plan.seeds]
            lines.append(f"{dataset + ' ' + variant:<{width}}  " + "".join(f"{c:<22}" for c in row))
    if queue is None and any(s.status == "RUNNING" for s in states):
        lines.append(f"No queue of campaign {plan.name} was found at {redact(url) if url else '(none given)'}, so "
                     "a running cell cannot be told from one whose worker died: run --status where the campaign "
                     "was started, or pass the --storage it uses.")
    return "\n".join(lines)


def shown_status(state: CellState, holders: dict[str, str], waiting: set[str], queue_read: bool = True) -> str:
    """The status the counts use: a RUNNING run whose worker is gone counts as stopped, as its cell reads."""
    if state.status != "RUNNING" or not queue_read:
        return state.status
    alive = state.cell.key in holders and not holders[state.cell.key].endswith(" (gone)")
    return "RUNNING" if alive else "KILLED"


def cell_text(state: CellState, holders: dict[str, str], waiting: set[str], queue_read: bool = True) -> str:
    text = SHORT[state.status]
    if state.status == "FINISHED" and "fid" in state.metrics:
        text += f" fid {state.metrics['fid']:.4g}"
    elif state.status == "RUNNING" and holders.get(state.cell.key, "").endswith(" (gone)"):
        text = f"stopped, worker {holders[state.cell.key][:-len(' (gone)')]} gone"  # its pid is dead: seen at once
    elif state.status == "RUNNING" and state.cell.key in holders:
        text += f" {holders[state.cell.key]}"
    elif state.status == "RUNNING" and not queue_read:
        text = "running? (no queue)"
    elif state.status == "RUNNING":  # its worker died before it could mark the run stopped
        text = "stopped, requeued" if state.cell.key in waiting else "stopped (no worker)"
    elif state.cell.key in waiting:
        text += " queued"
    return text


def eta(plan: Plan, states: list[CellState], workers: int = 1) -> str:
    if all(s.status == "FINISHED" for s in states):
        return "; all finished"
    left = eta_seconds(states, workers)
    if left is None:
        return "; ETA after the first finished cell"
    return (f"; ETA {duration(left)} on {workers} worker(s) at the measured "
            f"{1000 * seconds_per_image_epoch(states):.1f} ms per image-epoch")


def dry_run_text(plan: Plan) -> str:
    """The cells a run would train, each with its settings, and the estimated time."""
    states = cell_states(plan)
    todo = [s for s in states if s.status != "FINISHED"]
    rate = seconds_per_image_epoch(states)
    lines = [f"campaign {plan.name}: {len(todo)} of {len(states)} cells to run"]
    lines += [f"note: {note}" for note in plan.notes]
    lines += [f"warning: {problem}" for problem in _backbone_problems(plan)]
    total, images, by_variant = 0.0, {}, {}
    for state in todo:
        config = state.cell.config.resolved()
        data = (config.dataset, config.image_size, config.max_images)
        if data not in images:  # a dataset is read once, not once per cell
            images[data] = _images(state)
        work = cell_work(state.cell, images[data])
        total += work
        arch = (config.variant, config.width, config.image_size)
        by_variant[arch] = by_variant.get(arch, 0.0) + work
        lines.append(f"  {state.cell.key:<40} {SHORT[state.status]:<8} {config.epochs} epochs x "
                     f"{work // config.epochs:.0f} images, batch {config.batch_size}"
                     + (f", eval every {config.eval_every} ({config.eval_samples} samples)" if config.eval_every else ""))
    if rate is not None:
        lines.append(f"estimated: {duration(total * rate)} at the measured {1000 * rate:.1f} ms per image-epoch "
                     "(divide by the workers)")
    else:
        lines.append(f"{total:.0f} image-epochs in all; no cell has finished yet to measure the speed"
                     + _flop_estimate(by_variant))
    from harness.campaign.power import plan_power  # power needs SciPy and statsmodels: loaded on use
    lines += plan_power(plan)
    return "\n".join(lines)


def _backbone_problems(plan: Plan) -> list[str]:
    """What the real run would refuse for lack of the scoring backbone (e.g. Inception's file)."""
    from harness.errors import HarnessError
    from harness.measure.backbones import load_backbone

    problems = []
    for config in {(c.config.backbone, c.config.inception): c.config for c in plan.cells
                   if c.config.resolved().eval_every}.values():
        try:
            load_backbone(config.backbone, inception_path=config.inception)
        except HarnessError as exc:
            problems.append(f"the cells score with backbone {config.backbone!r}, which this machine lacks: {exc}")
    return problems


def _flop_estimate(work_by_variant: dict[tuple[str, float, int], float]) -> str:
    """``; at least ~2h10m at this machine's matrix-product speed (...)``: the model FLOPs of the
    image-epochs to train over the GFLOP/s this machine sustains; a lower bound, as a training
    step reaches a fraction of that speed (`bench` measures it)."""
    try:
        from harness.notebooks.bench import gemm_gflops, step_flops
        from variants import resolve

        flops = 0.0
        for (variant, width, image_size), work in work_by_variant.items():
            spec = resolve(variant).for_image(image_size, 3)
            flops += work * step_flops(spec.scaled(width) if width != 1.0 else spec)
        speed = gemm_gflops(size=1024, repeats=3)
    except Exception:  # an estimate only: the dry run's answer stands without it
        return " (`python -m harness bench` gives images per second of the step alone)"
    return (f"; at least {duration(flops / (speed * 1e9))} at this machine's matrix-product speed "
            f"({speed:.0f} GFLOP/s for {flops / 1e12:.3g} TFLOP of model arithmetic; training reaches a "
            "fraction of that speed: `python -m harness bench` measures the step)")


def _images(state: CellState) -> int:
    config = state.cell.config.resolved()
    return load_dataset(config.dataset, image_size=config.image_size, max_images=config.max_images).count
