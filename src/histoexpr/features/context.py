"""Spot context: each spot's features beside the mean features of its neighbours on the spot
grid, so a model sees the tissue around a spot and not only the spot (the lever TRIPLEX and
similar her2st models get most of their cross-patient gain from).

Neighbours are the spots of the same section whose centres lie within ``radius`` grid steps
(the grid step is the section's median nearest-neighbour distance, so legacy ST, Visium and
tile grids all work in their own units). The spot itself is not among its neighbours; a
spot without neighbours gets its own features as context.

Examples
--------
>>> xy = np.array([[0, 0], [1, 0], [2, 0], [10, 0]], float)
>>> f = np.array([[1.0], [2.0], [3.0], [4.0]])
>>> neighbour_mean(f, xy, np.zeros(4), radius=1).ravel().tolist()
[2.0, 2.0, 2.0, 4.0]
>>> with_context(f, xy, np.zeros(4), radius=1).shape
(4, 2)
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["grid_step", "neighbour_mean", "with_context"]

logger = logging.getLogger(__name__)


def grid_step(xy: np.ndarray) -> float:
    """The median distance from each spot to its nearest neighbour (the grid's pitch)."""
    from scipy.spatial import cKDTree

    if len(xy) < 2:
        raise InputError("spot context needs at least two spots in a section")
    d, _ = cKDTree(xy).query(xy, k=2)
    step = float(np.median(d[:, 1]))
    if not step > 0:
        raise InputError("spot context: spots share their positions; is there a spot grid?")
    return step


def neighbour_mean(feats: Any, xy: Any, sections: Any, *, radius: float) -> np.ndarray:
    """Per spot, the mean features of the other spots of its section within ``radius``
    grid steps (its own features when it has none)."""
    from scipy.spatial import cKDTree

    feats = np.asarray(feats, np.float32)
    xy = np.asarray(xy, float)
    sections = np.asarray(sections).astype(str)
    if not radius > 0:
        raise InputError(f"context radius must be positive (in grid steps), got {radius}")
    if len(xy) != len(feats) or len(sections) != len(feats):
        raise InputError(f"spot context: {len(feats)} feature rows, {len(xy)} positions, "
                         f"{len(sections)} section labels")
    out = feats.copy()
    for s in np.unique(sections):
        rows = np.flatnonzero(sections == s)
        if len(rows) < 2:
            continue
        pts = xy[rows]
        step = grid_step(pts)
        tree = cKDTree(pts)
        # a little slack so that spots exactly ``radius`` steps away on a jittered grid count
        pairs = tree.query_pairs(r=radius * step * 1.05, output_type="ndarray")
        if not len(pairs):
            logger.warning("section %s: no spot has a neighbour within %g grid steps", s,
                           radius)
            continue
        f = feats[rows]
        total = np.zeros_like(f, dtype=np.float64)
        count = np.zeros(len(rows))
        np.add.at(total, pairs[:, 0], f[pairs[:, 1]])
        np.add.at(total, pairs[:, 1], f[pairs[:, 0]])
        np.add.at(count, pairs[:, 0], 1)
        np.add.at(count, pairs[:, 1], 1)
        has = count > 0
        out[rows[has]] = (total[has] / count[has, None]).astype(np.float32)
    return out


def with_context(feats: Any, xy: Any, sections: Any, *, radius: float) -> np.ndarray:
    """``[own features, neighbour mean]`` per spot (twice the width)."""
    feats = np.asarray(feats, np.float32)
    return np.concatenate([feats, neighbour_mean(feats, xy, sections, radius=radius)], axis=1)
