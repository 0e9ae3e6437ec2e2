"""Spot context: each spot's features beside the mean features of its neighbours on the spot
grid, so a model sees the tissue around a spot and not only the spot (the lever TRIPLEX and
similar her2st models get most of their cross-patient gain from).

Neighbours are the spots of the same section whose centres lie within ``radius`` grid steps.
The grid step is the section's own pitch, so legacy ST (a square grid, 200 µm), Visium (a
hexagonal one, 100 µm) and tile grids all work in their own units: the median distance
between grid neighbours (the spots nearer than 1.3 times the typical nearest-neighbour
distance; the nearest distance alone is biased short on a jittered grid). Spot positions
aligned by hand wander (legacy ST: ±15 % of a step), so a neighbour counts when it lies
within ``radius`` steps plus the grid's jitter (:attr:`SpotGrid.slack`). The spot itself is
not among its neighbours; a spot without neighbours gets its own features as context.

A section has a spot grid when at least half its spots have a neighbour about one step away
(:data:`MIN_ON_GRID`); scattered positions (tiles sampled at random, spots without a
layout) have none, and context or smoothing over them is refused rather than computed at
an arbitrary scale.

``pool="attention"`` weights the neighbours instead of averaging them: each spot attends
to its neighbours by the cosine similarity of their standardised features, softmax with
temperature :data:`ATTENTION_TEMPERATURE` (a non-parametric self-attention: scaled
dot-product attention with identity projections over the grid neighbourhood), so tissue
like the spot's own weighs more than a neighbour across a boundary.

Examples
--------
>>> xy = np.array([[0, 0], [1, 0], [2, 0], [10, 0]], float)
>>> f = np.array([[1.0], [2.0], [3.0], [4.0]])
>>> neighbour_mean(f, xy, np.zeros(4), radius=1).ravel().tolist()
[2.0, 2.0, 2.0, 4.0]
>>> with_context(f, xy, np.zeros(4), radius=1).shape
(4, 2)
>>> g = spot_grid(xy)
>>> g.step, g.extent, g.on_grid, g.regular
(1.0, 10.0, 0.75, True)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["ATTENTION_TEMPERATURE", "CONTEXT_POOLS", "MIN_ON_GRID", "SpotGrid", "grid_step",
           "neighbour_mean", "no_grid_reason", "reach_warning", "section_grids", "spot_grid",
           "spot_names", "with_context"]

logger = logging.getLogger(__name__)

#: a spot is on the grid when its nearest neighbour is one step away, give or take this much
ON_GRID_TOLERANCE = 0.25
#: a section with fewer of its spots on the grid than this has no spot grid
MIN_ON_GRID = 0.5
#: the jitter allowance added to a radius: at least, at most (grid steps)
SLACK = (0.05, 0.3)
#: neighbour pairs held at once while averaging (bounds the memory of wide radii)
PAIRS_PER_CHUNK = 4_000_000
#: feature values held at once while scoring attention pairs (pairs x feature columns)
ATTENTION_VALUES = 20_000_000
#: softmax temperature of the attention pool over cosine similarities
ATTENTION_TEMPERATURE = 0.2
#: how the neighbours' features are pooled
CONTEXT_POOLS = ("mean", "attention")


@dataclass(frozen=True)
class SpotGrid:
    """The spot grid of one section as its positions show it.

    Attributes
    ----------
    n
        Spots.
    step
        Distance between grid neighbours (the units of the positions).
    slack
        Jitter allowance in steps: a neighbour within ``radius + slack`` steps counts.
    on_grid
        Fraction of the spots whose nearest neighbour is about one step away.
    extent
        The largest distance between two spots, in steps.
    """

    n: int
    step: float
    slack: float
    on_grid: float
    extent: float

    @property
    def regular(self) -> bool:
        """Whether the spots lie on a grid (see :data:`MIN_ON_GRID`)."""
        return self.on_grid >= MIN_ON_GRID

    def reach(self, radius: float) -> float:
        """The search distance of ``radius`` grid steps, jitter included."""
        return (radius + self.slack) * self.step

    def covers(self, radius: float) -> bool:
        """Whether ``radius`` steps reach from every spot to every other."""
        return self.reach(radius) >= self.extent * self.step


def _diameter(xy: np.ndarray) -> float:
    """The largest distance between two points (over the convex hull's corners)."""
    from scipy.spatial import ConvexHull, QhullError
    from scipy.spatial.distance import pdist

    try:
        pts = xy[ConvexHull(xy).vertices]
    except (QhullError, ValueError):  # collinear or too few points: the extremes will do
        pts = xy[np.unique([xy[:, 0].argmin(), xy[:, 0].argmax(), xy[:, 1].argmin(),
                            xy[:, 1].argmax()])]
    return float(pdist(pts).max()) if len(pts) > 1 else 0.0


def spot_grid(xy: Any, *, step: float | None = None) -> SpotGrid:
    """The grid of one section's spot (or tile) positions; ``step`` when it is known (a
    tile grid's stride), otherwise measured.

    Raises
    ------
    InputError
        Fewer than two spots, positions that are not finite, or every spot at one place.
    """
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, float)
    if len(xy) < 2:
        raise InputError("a spot grid needs at least two spots")
    if xy.ndim != 2 or not np.isfinite(xy).all():
        bad = int((~np.isfinite(xy)).any(axis=-1).sum()) if xy.ndim == 2 else len(xy)
        raise InputError(f"{bad} of {len(xy)} spots have no position (NaN or infinite x/y)")
    d, _ = cKDTree(xy).query(xy, k=min(len(xy), 7))
    nn = d[:, 1]
    if step is None:
        first = float(np.median(nn))
        if not first > 0:
            raise InputError(f"at least half of the {len(xy)} spots share their position "
                             "with another; there is no spot grid")
        near = d[:, 1:][d[:, 1:] <= 1.3 * first]  # the grid neighbours, not the diagonals
        step = float(np.median(near))
    elif not step > 0:
        raise InputError(f"grid step must be positive, got {step}")
    ratio = d[:, 1:] / step
    close = ratio[np.abs(ratio - 1) <= ON_GRID_TOLERANCE]
    jitter = float(np.quantile(np.abs(close - 1), 0.95)) if len(close) else 0.0
    return SpotGrid(n=len(xy), step=float(step),
                    slack=float(np.clip(jitter + SLACK[0], *SLACK)),
                    on_grid=float((np.abs(nn / step - 1) <= ON_GRID_TOLERANCE).mean()),
                    extent=_diameter(xy) / step)


def grid_step(xy: Any) -> float:
    """The distance between grid neighbours of one section (its pitch)."""
    return spot_grid(xy).step


def section_grids(xy: Any, sections: Any, *, step: float | None = None
                  ) -> dict[str, SpotGrid]:
    """:func:`spot_grid` of every section with two or more spots; an error names the
    section."""
    xy = np.asarray(xy, float)
    sections = np.asarray(sections).astype(str)
    out = {}
    for s in np.unique(sections):
        rows = sections == s
        if rows.sum() < 2:
            continue
        try:
            out[str(s)] = spot_grid(xy[rows], step=step)
        except InputError as e:
            raise InputError(f"section {s}: {e}") from e
    return out


def no_grid_reason(grid: SpotGrid, *, unit: str = "spots") -> str:
    """Why a section has no grid, for a message: ``only 2 of 9 spots have a neighbour one
    grid step (40 px) away``."""
    k = round(grid.on_grid * grid.n)
    return (f"only {k} of {grid.n} {unit} have a neighbour one grid step ({grid.step:.3g} px) "
            "away")


def reach_warning(grids: Mapping[str, SpotGrid], radius: float, *, option: str,
                  mpp: float | Mapping[str, Any] | None = None, what: str = "section"
                  ) -> str | None:
    """A warning when ``radius`` grid steps reach across whole sections (each spot's
    context is then its section's mean, the same for every spot), else ``None``.

    ``option`` names the setting (``"--context 50"``); ``mpp`` (one value or per section)
    adds microns to the numbers.
    """
    whole = [s for s, g in grids.items() if g.covers(radius)]
    if not whole:
        return None
    widest = max(whole, key=lambda s: grids[s].extent * grids[s].step)
    g = grids[widest]
    m = mpp.get(widest) if isinstance(mpp, Mapping) else mpp
    span = f" ({g.extent * g.step * float(m):.0f} µm)" if m else ""
    reach = f" ({radius * g.step * float(m):.0f} µm there)" if m else ""
    which = (f"{len(whole)} of {len(grids)} {what}s ({spot_names(whole)})" if len(grids) > 1
             else f"{what} {widest}")
    local = max(1, math.floor(min(grids[s].extent for s in whole) / 2))
    return (f"{option} reaches across the whole of {which}: {widest} spans "
            f"{g.extent:.1f} grid steps{span}, the radius is {radius:g} steps{reach}; each "
            f"spot's context there is its {what}'s mean, the same for every spot; a radius "
            f"of {local} grid step{'s' if local > 1 else ''} or less keeps it local")


def spot_names(items: list[str], n: int = 3) -> str:
    """``"a, b, c and 2 more"``."""
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def _unit_rows(f: np.ndarray) -> np.ndarray:
    """Features standardised over the section's spots, each row scaled to unit length (the
    queries and keys of the attention pool)."""
    z = (f - f.mean(axis=0)) / np.maximum(f.std(axis=0), 1e-6)
    return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-6)).astype(np.float32)


def _attention_weights(z: np.ndarray, i: np.ndarray, j: np.ndarray, offset: int,
                       n_rows: int, temperature: float) -> np.ndarray:
    """Softmax over each row's pairs ``(i, j)`` of the cosine similarity of ``z[offset + i]``
    and ``z[j]`` over ``temperature``; pairs scored a batch at a time."""
    logits = np.empty(len(i), np.float32)
    batch = max(1, ATTENTION_VALUES // max(1, z.shape[1]))
    for b in range(0, len(i), batch):
        ii, jj = i[b:b + batch], j[b:b + batch]
        logits[b:b + batch] = np.einsum("ij,ij->i", z[offset + ii], z[jj]) / temperature
    top = np.full(n_rows, -np.inf, np.float32)
    np.maximum.at(top, i, logits)
    w = np.exp(logits - top[i])
    return w / np.bincount(i, weights=w, minlength=n_rows)[i]


def _pool_of_others(f: np.ndarray, pts: np.ndarray, reach: float, *, pool: str = "mean"
                    ) -> tuple[np.ndarray, int]:
    """Per point, the pooled features (mean, or attention-weighted) of the other points
    within ``reach`` (its own when it has none), and how many points have any. The pairs
    are held a chunk of points at a time, so wide radii over many tiles do not exhaust the
    memory."""
    from scipy.sparse import csr_matrix
    from scipy.spatial import cKDTree

    n = len(pts)
    tree = cKDTree(pts)
    sample = pts[: min(n, 200)]
    per_point = max(1.0, tree.count_neighbors(cKDTree(sample), reach) / len(sample))
    chunk = int(max(1, PAIRS_PER_CHUNK // per_point))
    z = _unit_rows(f) if pool == "attention" else None
    out = f.copy()
    n_with = 0
    for start in range(0, n, chunk):
        part = pts[start:start + chunk]
        pairs = cKDTree(part).sparse_distance_matrix(tree, reach, output_type="ndarray")
        i, j = pairs["i"], pairs["j"]
        other = i + start != j
        i, j = i[other], j[other]
        count = np.bincount(i, minlength=len(part))
        has = count > 0
        if z is None:
            w = 1.0 / count[i]
        else:
            w = _attention_weights(z, i, j, start, len(part), ATTENTION_TEMPERATURE)
        m = csr_matrix((w.astype(np.float32), (i, j)), shape=(len(part), n))
        out[start + np.flatnonzero(has)] = (m @ f)[has]
        n_with += int(has.sum())
    return out, n_with


def neighbour_mean(feats: Any, xy: Any, sections: Any, *, radius: float,
                   step: float | None = None, what: str = "spot context (--context)",
                   pool: str = "mean") -> np.ndarray:
    """Per spot, the mean features of the other spots of its section within ``radius``
    grid steps (its own features when it has none); with ``pool="attention"`` their
    attention-weighted mean (see the module's notes).

    ``step`` is the grid step when it is known (a tile grid's stride, the positions' units);
    by default each section's is measured. ``what`` names the option in errors.

    Raises
    ------
    InputError
        A radius that is not positive, inputs of different lengths, or a section whose
        spots are not on a grid (scattered positions, positions missing).
    """
    feats = np.asarray(feats, np.float32)
    xy = np.asarray(xy, float)
    sections = np.asarray(sections).astype(str)
    if not radius > 0:
        raise InputError(f"context radius must be positive (in grid steps), got {radius}")
    if pool not in CONTEXT_POOLS:
        raise InputError(f"context pool must be one of {', '.join(CONTEXT_POOLS)}, not "
                         f"{pool!r}")
    if len(xy) != len(feats) or len(sections) != len(feats):
        raise InputError(f"spot context: {len(feats)} feature rows, {len(xy)} positions, "
                         f"{len(sections)} section labels")
    try:
        grids = section_grids(xy, sections, step=step)
    except InputError as e:
        raise InputError(f"{what}: {e}") from e
    out = feats.copy()
    for s, grid in grids.items():
        if not grid.regular:
            raise InputError(f"{what} needs spots on a grid, and section {s} has none "
                             f"({no_grid_reason(grid)}); check the section's spot positions")
        rows = np.flatnonzero(sections == s)
        f = feats[rows]
        if grid.covers(radius) and pool == "mean":  # every other spot: no pairs needed
            total = f.sum(axis=0, dtype=np.float64)[None, :] - f
            out[rows] = (total / (len(rows) - 1)).astype(np.float32)
        else:
            out[rows], n_with = _pool_of_others(f, xy[rows], grid.reach(radius), pool=pool)
            if not n_with:
                logger.warning("section %s: no spot has a neighbour within %g grid steps",
                               s, radius)
    return out


def with_context(feats: Any, xy: Any, sections: Any, *, radius: float,
                 step: float | None = None, pool: str = "mean") -> np.ndarray:
    """``[own features, pooled neighbours]`` per spot (twice the width); ``pool`` is
    ``"mean"`` or ``"attention"``."""
    feats = np.asarray(feats, np.float32)
    return np.concatenate([feats, neighbour_mean(feats, xy, sections, radius=radius,
                                                 step=step, pool=pool)], axis=1)
