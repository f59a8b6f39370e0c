"""Run a plan with a ``[tuning]`` table: every arm's search, then its confirmation cells.

Top to bottom: the search campaign (``search.search_plan``: every trial of
every arm, queued and claimed like cells, resumable) runs to the end; each
arm's winner is read back; then the plan's cells run with their arm's
winning settings. Workers (``--workers``, or other machines on one
PostgreSQL storage) do the same two steps, so a worker that finds the search
queue empty goes on to the confirmation cells. ``--status`` and
``--dry-run`` print both halves.
"""

from __future__ import annotations

from collections import Counter

from harness.campaign import status as cells_status
from harness.campaign.plan import Plan
from harness.campaign.queue import CellQueue
from harness.campaign.run import Options, Outcome, run_campaign
from harness.campaign.search import arms, confirmed_plan, params_text, search_plan, trial_value, winners
from harness.campaign.state import CellState, cell_states, cell_work, seconds_per_image_epoch
from harness.data import load_dataset
from harness.train.progress import duration


def run_tuned(plan: Plan, options: Options, log=print) -> Outcome:
    """Bring ``plan``'s searches, then its confirmation cells, to FINISHED (or FAILED)."""
    tuning, search = plan.tuning, search_plan(plan)
    if not options.worker:
        log(f"campaign {plan.name}: {len(arms(plan))} arms searched alike, {tuning.trials} trials each on seed(s) "
            f"{', '.join(map(str, tuning.seeds))} (best {tuning.metric}), then confirmed on seed(s) "
            f"{', '.join(map(str, plan.seeds))}")
    outcome = run_campaign(search, options, log)
    won, pending = winners(plan)
    if not options.worker:
        for (dataset, variant), winner in won.items():
            log(f"arm {dataset}/{variant}: trial {winner.trial.key} won ({tuning.metric} {winner.value:.4g}; "
                f"{params_text(winner.params)})")
        for line in pending:
            log(f"not confirmed: {line}")
            outcome.failed.append(line.split(":", 1)[0])
    confirmed = confirmed_plan(plan, won)
    if confirmed.cells:
        more = run_campaign(confirmed, options, log)
        outcome.finished += more.finished
        outcome.failed += more.failed
        outcome.skipped_failed += more.skipped_failed
        outcome.failed_workers += more.failed_workers
    return outcome


# --- status ---------------------------------------------------------------------------------
def status_text(plan: Plan, url: str | None = None) -> str:
    """Each arm's search (trials done, running, best so far), then the confirmation grid."""
    tuning, search = plan.tuning, search_plan(plan)
    states = cell_states(search)
    holders = _holders(search.name, url)
    counts = Counter(s.status for s in states)
    lines = [f"campaign {plan.name} ({plan.path}): tuned by {tuning.metric}, {tuning.trials} trials per arm; "
             f"search: {len(states)} trials: " + ", ".join(f"{n} {k.lower()}" for k, n in counts.items())]
    width = max(len(f"{d} {v}") for d, v in arms(plan))
    for dataset, variant in arms(plan):
        mine = [s for s in states if (s.cell.dataset, s.cell.variant) == (dataset, variant)]
        done = Counter(s.status for s in mine)
        scored = [(v, s) for s in mine if (v := trial_value(s, tuning.metric)) is not None]
        text = f"{done['FINISHED']}/{len(mine)} done"
        text += "".join(f", {done[k]} {k.lower()}" for k in ("RUNNING", "FAILED", "KILLED", "CHANGED") if done[k])
        running = [holders[s.cell.key] for s in mine if s.cell.key in holders]
        if running:
            text += f" ({', '.join(running)})"
        if scored:
            value, best = (min if tuning.lower_is_better else max)(scored, key=lambda x: x[0])
            text += f"; best so far {best.cell.key.rsplit('/', 1)[1]} {tuning.metric} {value:.4g}"
        lines.append(f"  {dataset + ' ' + variant:<{width}}  {text}")
    won, pending = winners(plan, states)
    if pending:
        lines.append("confirmation: waits for the searches (" + "; ".join(pending) + ")")
        lines.append(f"  {len(plan.cells)} cells: {len(plan.datasets)} dataset(s) x {len(plan.variants)} arms x "
                     f"seeds {', '.join(map(str, plan.seeds))}")
    else:
        lines.append("confirmation, each arm with its best trial's settings:")
        lines.append(cells_status.status_text(confirmed_plan(plan, won), url))
    return "\n".join(lines)


def _holders(name: str, url: str | None) -> dict[str, str]:
    if url is None:
        return {}
    try:
        return CellQueue(name, url).holders()
    except Exception:  # the queue is optional here: MLflow alone says where trials stand
        return {}


# --- dry run --------------------------------------------------------------------------------
def dry_run_text(plan: Plan) -> str:
    """The budget per arm (trials x G steps), the confirmation runs, and the machine time."""
    tuning, search = plan.tuning, search_plan(plan)
    trial_states = cell_states(search)
    won, pending = winners(plan, trial_states)
    confirm_states = cell_states(confirmed_plan(plan, won)) if not pending else [
        CellState(cell, "MISSING") for cell in plan.cells]
    images = {d: _images(plan, d) for d in plan.datasets}
    lines = [f"campaign {plan.name}: tuned by {tuning.metric}; every arm gets the same budget"]
    todo_work = 0.0
    for dataset, variant in arms(plan):
        mine = [s for s in trial_states if (s.cell.dataset, s.cell.variant) == (dataset, variant)]
        config = mine[0].cell.config.resolved()
        steps = config.epochs * (min(images[dataset], config.max_images or images[dataset]) // config.batch_size)
        left = [s for s in mine if s.status != "FINISHED"]
        todo_work += sum(cell_work(s.cell, images[dataset]) for s in left)
        lines.append(f"  arm {dataset}/{variant}: {tuning.trials} trials x {steps} G steps ({config.epochs} epochs, "
                     f"batch {config.batch_size}) = {tuning.trials * steps} G steps; {len(left)} trials to run")
    left = [s for s in confirm_states if s.status != "FINISHED"]
    todo_work += sum(cell_work(s.cell, images[s.cell.dataset]) for s in left)
    config = plan.cells[0].config.resolved()
    lines.append(f"confirmation: {len(plan.cells)} runs ({len(plan.datasets)} dataset(s) x {len(plan.variants)} arms x "
                 f"seeds {', '.join(map(str, plan.seeds))}), {config.epochs} epochs each, with each arm's best "
                 f"trial's settings; {len(left)} to run")
    for state in left:
        lines.append(f"  {state.cell.key:<40} {cells_status.SHORT[state.status]}")
    rate = seconds_per_image_epoch(trial_states + confirm_states)
    if rate is not None:
        lines.append(f"estimated machine time: {duration(todo_work * rate)} at this machine's measured "
                     f"{1000 * rate:.1f} ms per image-epoch (divide by the workers)")
    else:
        lines.append(_flop_estimate(plan, trial_states + confirm_states, images))
    return "\n".join(lines)


def _images(plan: Plan, dataset: str) -> int:
    config = next(c for c in plan.cells if c.dataset == dataset).config.resolved()
    return load_dataset(config.dataset, image_size=config.image_size, max_images=config.max_images).count


def _flop_estimate(plan: Plan, states: list[CellState], images: dict[str, int]) -> str:
    """Nothing has run yet: the model FLOPs left over this CPU's matrix-product speed (a lower bound)."""
    from harness.notebooks.bench import gemm_gflops, step_flops
    from variants import resolve

    flops: dict[tuple[str, float], float] = {}
    total = 0.0
    for state in states:
        if state.status == "FINISHED":
            continue
        config = state.cell.config.resolved()
        key = (config.variant, config.width)
        if key not in flops:
            spec = resolve(config.variant)
            flops[key] = step_flops(spec.scaled(config.width) if config.width != 1.0 else spec)
        total += flops[key] * cell_work(state.cell, images[state.cell.dataset])
    speed = gemm_gflops(size=1024, repeats=3)
    return (f"estimated machine time: at least {duration(total / (speed * 1e9))} ({total / 1e12:.3g} TFLOP of "
            f"training at this machine's measured {speed:.0f} GFLOP/s matrix-product speed; no run has finished "
            "yet to measure the real speed, which is slower; evaluation not counted)")
