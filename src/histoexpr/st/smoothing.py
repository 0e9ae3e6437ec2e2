"""Output smoothing over the spot grid (issue 20, item 5): each spot's predicted expression
pulled toward the mean prediction of its grid neighbours,

    smoothed = (1 - a) * prediction + a * mean(neighbours' predictions),

with the strength ``a`` chosen on data the scored spots were not part of: for a
cross-validation fold, on the other folds' out-of-fold predictions; for the held-out set and
for ``st predict``, on every fold's. Expression varies smoothly over tissue while a
patch-level model's errors are partly independent from spot to spot, so averaging
neighbours removes some of the error.

Examples
--------
>>> xy = np.array([[0, 0], [1, 0], [2, 0]], float)
>>> smooth(np.array([[0.0], [4.0], [2.0]]), xy, np.zeros(3), 0.5).ravel().tolist()
[2.0, 2.5, 3.0]
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..features.context import neighbour_mean

__all__ = ["STRENGTHS", "best_strength", "smooth", "strength_scores"]

logger = logging.getLogger(__name__)

#: the strengths tried
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def smooth(pred: Any, xy: Any, sections: Any, strength: float, *, radius: float = 1.0,
           what: str = "output smoothing (--smooth)") -> np.ndarray:
    """``(1 - strength) * pred + strength * neighbour mean`` per section; ``what`` names the
    option in the error raised for a section whose spots are not on a grid."""
    pred = np.asarray(pred, np.float32)
    if strength == 0:
        return pred
    near = neighbour_mean(pred, xy, sections, radius=radius, what=what)
    return ((1 - strength) * pred + strength * near).astype(np.float32)


def _mean_pearson(t: np.ndarray, p: np.ndarray) -> float:
    t, p = t - t.mean(0), p - p.mean(0)
    den = np.sqrt((t ** 2).sum(0) * (p ** 2).sum(0))
    ok = den > 0
    return float(((t * p).sum(0)[ok] / den[ok]).mean()) if ok.any() else float("nan")


def strength_scores(folds: list[dict[str, Any]], xy_of: Any,
                    strengths: tuple[float, ...] = STRENGTHS) -> np.ndarray:
    """``(folds, strengths)``: the mean Pearson r over genes of each fold (a result with
    ``spots``, ``y_true``, ``y_pred``) smoothed at each strength; ``xy_of(spots) -> (xy,
    sections)``. Computed once, then :func:`best_strength` picks from it."""
    out = np.full((len(folds), len(strengths)), np.nan)
    for i, r in enumerate(folds):
        xy, sec = xy_of(r["spots"])
        t = np.asarray(r["y_true"], float)
        for j, a in enumerate(strengths):
            out[i, j] = _mean_pearson(t, smooth(r["y_pred"], xy, sec, a).astype(float))
    return out


def best_strength(scores: np.ndarray, *, leave_out: int | None = None,
                  strengths: tuple[float, ...] = STRENGTHS) -> float:
    """The strength with the best fold-mean score, over every fold but ``leave_out``."""
    rows = scores if leave_out is None else np.delete(scores, leave_out, axis=0)
    return float(strengths[int(np.nanargmax(np.nanmean(rows, axis=0)))])
