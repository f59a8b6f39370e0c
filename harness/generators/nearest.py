"""The memorisation check of a logged run: ``nearest_for_run(run_id)`` (what ``sample --nearest`` draws).

Its samples beside their nearest training images, measured in the features
of the very backbone file the run was evaluated with (its logged name and
md5): nearness in another network's features would be another check. The
training images are the run's own (its dataset, image size and
``--max-images``), refused when the data changed since.
"""

from __future__ import annotations

import numpy as np

from harness.errors import ConfigError
from harness.generators.sampling import load_generator
from harness.generators.scoring import run_and_data
from harness.measure import memorisation
from harness.measure.provenance import OFFLINE_PREFIX
from harness.store import tracking


def nearest_for_run(run_id: str, *, tracking_uri: str, rows: int = memorisation.ROWS, k: int = memorisation.K,
                    seed: int = 0, inception_path: str | None = None,
                    log=print) -> tuple[np.ndarray, memorisation.Neighbours]:
    """The grid of run ``run_id``'s samples (seeds ``seed``..) beside their ``k`` nearest training images.

    Returns the grid image and the neighbours. Raises ``ConfigError`` when the
    run was never evaluated (no backbone is known), or when its backbone file
    is not here; ``TrackingError`` / ``DataError`` as ``run_and_data``.
    """
    from harness.measure.backbones import load_backbone
    from harness.measure.real_images import cache_key

    if rows < 1 or k < 1:
        raise ConfigError(f"--n {rows} and --nearest-k {k} must both be at least 1.")
    run, _, dataset = run_and_data(run_id, tracking_uri)
    name, md5 = run.params.get("eval_backbone"), run.params.get("eval_backbone_md5")
    if name is None or md5 is None:
        raise ConfigError(f"run {run_id} has no recorded backbone (eval_backbone and eval_backbone_md5 params), "
                          f"so nearness has no feature space; score it first with `python -m harness eval "
                          f"--run-id {run_id}`.")
    choice = "cifar10_classifier" if name.startswith(OFFLINE_PREFIX) else "inception"
    try:
        backbone = load_backbone(choice, inception_path=inception_path)
    except ConfigError as exc:
        raise ConfigError(f"run {run_id} was evaluated with {name} (md5 {md5[:8]}), which is not here: "
                          f"{exc}") from None
    if backbone.identity.md5 != md5:
        raise ConfigError(f"run {run_id} was evaluated with {name} (md5 {md5[:8]}), but the {choice} backbone "
                          f"here is {backbone.name} (md5 {backbone.identity.md5[:8]}); put that file back "
                          + ("(--inception PATH)." if choice == "inception" else "in the cache ($HARNESS_CACHE_DIR)."))
    generator = load_generator(tracking_uri, tracking.generator_uri(tracking_uri, run_id))
    return memorisation.draw(backbone, generator, dataset.images, training_key=cache_key(dataset), rows=rows, k=k,
                             seed=seed, log=log)
