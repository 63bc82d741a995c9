"""Calibration of predicted quality: expected calibration error, overall and per arm.

ECE (Naeini et al., 2015; Guo et al., 2017): the predictions are put in `bins` equal-width
bins over [0, 1]; in each bin, |mean prediction - mean outcome|, weighted by the bin's
share of the predictions, summed. Outcomes may be graded (any number in [0, 1]), not only
0/1: the bin's mean outcome is then its mean grade. 0 is perfectly calibrated.

A router's predicted quality of the arm it chose is scored against the outcome it got;
`ece_per_arm` gives one ECE per arm, over the decisions that arm was chosen for.

>>> expected_calibration_error([0.2, 0.2, 0.8, 0.8], [0.0, 1.0, 1.0, 1.0], bins=2)
0.25
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def expected_calibration_error(predicted: ArrayLike, outcome: ArrayLike, bins: int = 10) -> float:
    """ECE of `predicted` probabilities against `outcome`s in [0, 1], over `bins` equal-width bins."""
    p = np.asarray(predicted, dtype=float)
    y = np.asarray(outcome, dtype=float)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"predicted and outcome must be two 1-D sequences of one length, got {p.shape} and {y.shape}")
    if bins < 1:
        raise ValueError(f"bins: {bins} is not a positive number of bins")
    if not len(p):
        raise ValueError("predicted: no predictions to score")
    if not (np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()):
        raise ValueError("predicted: every prediction must be a probability in [0, 1]")
    b = np.minimum((p * bins).astype(np.int64), bins - 1)  # 1.0 goes in the last bin
    n = np.bincount(b, minlength=bins)
    gap = np.abs(np.bincount(b, weights=p, minlength=bins) - np.bincount(b, weights=y, minlength=bins))
    return round(float(gap.sum() / len(p)), 12)  # sum over bins of n_b/N * |mean p - mean y|


def ece_per_arm(arms: Sequence[str], chosen: Sequence[str], predicted: ArrayLike, outcome: ArrayLike,
                bins: int = 10) -> dict[str, float | None]:
    """Each arm's ECE over the decisions it was chosen for (None: never chosen).

    >>> ece_per_arm(["a", "b", "c"], ["a", "a", "b"], [0.9, 0.9, 0.5], [1.0, 0.0, 0.5])
    {'a': 0.4, 'b': 0.0, 'c': None}
    """
    c = np.asarray(chosen)
    p = np.asarray(predicted, dtype=float)
    y = np.asarray(outcome, dtype=float)
    out: dict[str, float | None] = {}
    for arm in arms:
        mask = c == arm
        out[arm] = expected_calibration_error(p[mask], y[mask], bins) if mask.any() else None
    return out
