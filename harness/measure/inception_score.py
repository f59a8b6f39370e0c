"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs").

As the reference (openai/improved-gan ``inception_score/model.py``): the
class probabilities are cut, in order and without shuffling, into ``splits``
consecutive parts; each part scores exp(mean_i KL(p(y|x_i) || p(y))) with p(y)
the part's mean; the result is the mean and standard deviation (ddof=0) of
the part scores. With Inception the probabilities are the reference's
softmax over 1008 logits (see backbones/inception.py).
"""

from __future__ import annotations

import numpy as np


def inception_score(probs: np.ndarray, *, splits: int = 10) -> tuple[float, float]:
    """Return (mean, std) of the Inception Score of ``probs`` (n, classes), rows summing to 1."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) < splits:
        raise ValueError(f"probs must be (n >= splits={splits}, classes), got shape {probs.shape}")
    n = len(probs)
    scores = []
    for i in range(splits):
        part = probs[i * n // splits : (i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        # 0 * log 0 counts as 0: a class the part never predicts adds nothing.
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
