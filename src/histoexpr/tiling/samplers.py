"""Coordinate samplers: where tiles go. Each returns level-0 top-left corners, ``(N, 2)``
int64 ``x, y``; none reads pixels.

- :func:`grid_coords` — a regular grid inside tissue (seed 002, CLAM/TRIDENT).
- :func:`spot_coords` — squares centred on spatial-transcriptomics spots (seed 003).
- :func:`heatmap_coords` — grid cells ranked by a tumour-probability map (seed 000).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import CoordinateError, InputError
from ..registry import Registry
from ..tissue import TissueMask, mean_in_squares, summed_area
from .spec import TileSpec

logger = logging.getLogger(__name__)

__all__ = ["SAMPLERS", "grid_coords", "heatmap_coords", "spot_coords"]

SAMPLERS: Registry = Registry("tile sampler")


def _grid(dimensions: tuple[int, int], size0: float, stride0: float) -> np.ndarray:
    """All grid corners whose tile lies wholly inside the slide."""
    w0, h0 = dimensions
    nx = int(np.floor((w0 - size0) / stride0)) + 1 if w0 >= size0 else 0
    ny = int(np.floor((h0 - size0) / stride0)) + 1 if h0 >= size0 else 0
    xs = np.round(np.arange(nx) * stride0).astype(np.int64)
    ys = np.round(np.arange(ny) * stride0).astype(np.int64)
    gx, gy = np.meshgrid(xs, ys)  # row-major: y outer, x inner
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def grid_coords(
    tissue: TissueMask,
    spec: TileSpec,
    *,
    slide_mpp: float,
    dimensions: tuple[int, int],
    min_tissue: float = 0.5,
) -> np.ndarray:
    """Grid tiles whose tissue fraction is at least ``min_tissue``.

    Parameters
    ----------
    tissue
        Mask from :func:`histoexpr.tissue.detect_tissue`.
    spec
        Tile size/mpp/stride.
    slide_mpp, dimensions
        Level-0 pixel size and ``(width, height)`` of the slide.
    min_tissue
        Minimum fraction of the tile's area on tissue (0 keeps every tile touching none).

    Examples
    --------
    >>> m = TissueMask(np.ones((10, 10), bool), scale=(100.0, 100.0))
    >>> grid_coords(m, TileSpec(256, 0.5), slide_mpp=0.5, dimensions=(1000, 1000)).shape
    (9, 2)
    """
    if not 0 <= min_tissue <= 1:
        raise InputError(f"min_tissue must be in [0, 1], got {min_tissue}")
    size0 = spec.size_level0(slide_mpp)
    coords = _grid(dimensions, size0, spec.stride_level0(slide_mpp))
    if len(coords) == 0:
        return coords
    frac = tissue.fractions(coords, size0)
    keep = frac >= min_tissue if min_tissue > 0 else frac > 0
    return coords[keep]


def spot_coords(
    centres: np.ndarray,
    spec: TileSpec,
    *,
    slide_mpp: float,
    dimensions: tuple[int, int],
    source: str = "spots",
    ids: np.ndarray | None = None,
) -> np.ndarray:
    """Top-left corners of ``spec``-sized squares centred on level-0 spot centres.

    Raises
    ------
    CoordinateError
        A spot centre lies outside the image; the message names ``source`` and an example,
        because this almost always means the wrong image or a scaled image.

    Examples
    --------
    >>> spot_coords(np.array([[500.0, 400.0]]), TileSpec(224, 0.5), slide_mpp=0.5,
    ...             dimensions=(1000, 1000))
    array([[388, 288]])
    """
    c = np.asarray(centres, np.float64).reshape(-1, 2)
    w0, h0 = dimensions
    bad = ~((c[:, 0] >= 0) & (c[:, 0] < w0) & (c[:, 1] >= 0) & (c[:, 1] < h0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        name = f"spot {ids[i]}" if ids is not None else f"row {i}"
        raise CoordinateError(
            f"{source}: {int(bad.sum())} of {len(c)} spot centres lie outside the image "
            f"({w0} x {h0} px), e.g. {name} at ({c[i, 0]:.0f}, {c[i, 1]:.0f}); check that the "
            "spots belong to this image and are in full-resolution pixels"
        )
    half = spec.size_level0(slide_mpp) / 2
    return np.round(c - half).astype(np.int64)


def heatmap_coords(
    heatmap: np.ndarray,
    spec: TileSpec,
    *,
    slide_mpp: float,
    dimensions: tuple[int, int],
    tissue: TissueMask | None = None,
    min_prob: float = 0.5,
    min_tissue: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Grid tiles ranked by mean tumour probability, highest first.

    The heatmap is a ``(h, w)`` probability map aligned to the whole slide (its pixel
    ``(c, r)`` covers level-0 ``[c*W/w, (c+1)*W/w) x ...``). Returns all tiles whose mean
    probability is at least ``min_prob`` (and tissue fraction at least ``min_tissue`` when
    ``tissue`` is given), sorted by probability, with their scores; callers take the first
    N that pass their filters — seed 000 samples patches from the highest-probability
    regions and replaces those the K-means filter rejects.

    Examples
    --------
    >>> hm = np.zeros((10, 10)); hm[:5, :5] = 0.9
    >>> c, p = heatmap_coords(hm, TileSpec(100, 1.0), slide_mpp=1.0, dimensions=(1000, 1000))
    >>> len(c), round(float(p[0]), 6)
    (25, 0.9)
    """
    hm = np.asarray(heatmap, np.float64)
    if hm.ndim != 2 or min(hm.shape) < 1:
        raise InputError(f"heatmap must be a 2D array, got shape {hm.shape}")
    if np.nanmax(hm) > 1.0 + 1e-9 or np.nanmin(hm) < 0:
        raise InputError(
            f"heatmap values must be probabilities in [0, 1], got {np.nanmin(hm):.3g}"
            f"..{np.nanmax(hm):.3g}; scale 8-bit maps by 1/255"
        )
    size0 = spec.size_level0(slide_mpp)
    coords = _grid(dimensions, size0, spec.stride_level0(slide_mpp))
    if len(coords) == 0:
        return coords, np.zeros(0)
    w0, h0 = dimensions
    scale = (w0 / hm.shape[1], h0 / hm.shape[0])
    score = mean_in_squares(summed_area(np.nan_to_num(hm)), coords, size0, scale)
    keep = score >= min_prob
    if tissue is not None:
        keep &= tissue.fractions(coords, size0) >= min_tissue
    order = np.argsort(-score[keep], kind="stable")
    return coords[keep][order], score[keep][order]


SAMPLERS.register("grid", grid_coords, priority=10)
SAMPLERS.register("spots", spot_coords)
SAMPLERS.register("heatmap", heatmap_coords)
