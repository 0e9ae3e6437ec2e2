"""The rasters the viewer draws its layers on and looks a hovered position up in: one cell
per tile of a regular grid, or cells of 1/8 spot size each holding the spot that covers it."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["spot_grid", "tile_grid"]


def spot_grid(xy: np.ndarray, size: float, dims: tuple[int, int], *,
              shape: str = "circle") -> dict[str, Any]:
    """A raster over the shapes' bounding box, cells of 1/8 of their size, each holding the
    spot (a disc of diameter ``size``) or tile (a square of side ``size``) that covers it,
    or -1: layers are drawn and hovered on it as tiles are."""
    from scipy.spatial import cKDTree

    r = size / 2
    step = max(1.0, size / 8)
    x0, y0 = max(0.0, float(xy[:, 0].min() - r)), max(0.0, float(xy[:, 1].min() - r))
    cols = int(np.ceil((min(dims[0], xy[:, 0].max() + r) - x0) / step))
    rows = int(np.ceil((min(dims[1], xy[:, 1].max() + r) - y0) / step))
    cy, cx = np.mgrid[0:rows, 0:cols]
    centres = np.c_[x0 + (cx.ravel() + 0.5) * step, y0 + (cy.ravel() + 0.5) * step]
    dist, idx = cKDTree(xy).query(centres, distance_upper_bound=r,
                                  p=2 if shape == "circle" else np.inf)
    index = np.where(np.isfinite(dist), idx, -1).astype(np.int64)
    return {"x0": x0, "y0": y0, "step": step, "rows": rows, "cols": cols,
            "index": index.tolist(), "_cells": index}


def tile_grid(coords: np.ndarray, size0: float, step: float) -> dict[str, Any]:
    """Tiles (level-0 top-left ``coords``, side ``size0``, grid ``step``) as a raster of
    one cell per grid position, each holding its tile (or -1)."""
    col = np.rint((coords[:, 0] - coords[:, 0].min()) / step).astype(int)
    row = np.rint((coords[:, 1] - coords[:, 1].min()) / step).astype(int)
    rows, cols = int(row.max()) + 1, int(col.max()) + 1
    index = np.full(rows * cols, -1, np.int64)
    index[row * cols + col] = np.arange(len(coords))
    return {"x0": float(coords[:, 0].min() + (size0 - step) / 2),
            "y0": float(coords[:, 1].min() + (size0 - step) / 2),
            "step": float(step), "rows": rows, "cols": cols, "index": index.tolist(),
            "_row": row, "_col": col}
