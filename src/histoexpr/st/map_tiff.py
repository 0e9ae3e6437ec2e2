"""Whole-slide expression maps as pyramidal OME-TIFFs, written tile by tile (issue 21).

``predict-slide`` draws each mapped gene as a PNG over the thumbnail; for viewers that
overlay images on the slide (QuPath, napari, OMERO) it also writes ``maps/<gene>.ome.tif``:
one float32 channel (the tile's predicted expression; NaN off the tiles) covering the
whole slide at ``map_mpp`` µm per pixel, with the pixel size in the OME metadata and the
resolution tags, a pyramid of halved levels (SubIFDs) down to one TIFF tile, deflate
compression. Pixels are computed per TIFF tile from the grid of tile values (one value per
tile: the size of the coordinates), so memory does not grow with the slide: a 100,000 x
80,000 px slide at 8 µm/px is a 3,125 x 2,500 px map that is never held whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["MAP_MPP", "write_map_tiff"]

#: µm per map pixel by default: 32x coarser than a 0.25 µm/px (40x) slide, finer than any
#: spot or tile the models predict (55-224 µm)
MAP_MPP = 8.0
#: TIFF tile side (pixels)
TIFF_TILE = 256


def _grid(coords: np.ndarray, stride0: float, values: np.ndarray) -> np.ndarray:
    col = np.rint((coords[:, 0] - coords[:, 0].min()) / stride0).astype(np.int64)
    row = np.rint((coords[:, 1] - coords[:, 1].min()) / stride0).astype(np.int64)
    grid = np.full((row.max() + 1, col.max() + 1), np.nan, np.float32)
    grid[row, col] = values
    return grid


def _tiles(grid: np.ndarray, origin: tuple[float, float], stride0: float, px0: float,
           shape: tuple[int, int]) -> Iterator[np.ndarray]:
    """The TIFF tiles of one level (row-major) whose pixels are ``px0`` level-0 pixels."""
    h, w = shape
    gh, gw = grid.shape
    for ty in range(0, h, TIFF_TILE):
        rows = np.floor(((ty + np.arange(TIFF_TILE) + 0.5) * px0 - origin[1]) / stride0)
        for tx in range(0, w, TIFF_TILE):
            cols = np.floor(((tx + np.arange(TIFF_TILE) + 0.5) * px0 - origin[0]) / stride0)
            r = rows.astype(np.int64)[:, None]
            c = cols.astype(np.int64)[None, :]
            inside = (r >= 0) & (r < gh) & (c >= 0) & (c < gw)
            tile = np.full((TIFF_TILE, TIFF_TILE), np.nan, np.float32)
            rr, cc = np.broadcast_arrays(r, c)
            tile[inside] = grid[rr[inside], cc[inside]]
            yield tile


def write_map_tiff(path: str | Path, coords: np.ndarray, size0: float, stride0: float,
                   values: np.ndarray, *, dims: tuple[int, int], slide_mpp: float,
                   map_mpp: float = MAP_MPP, gene: str = "") -> Path:
    """Write one gene's tile values as a pyramidal OME-TIFF covering the slide.

    Parameters
    ----------
    coords, size0, stride0
        Tiles' level-0 top-left corners, side and grid step (level-0 pixels).
    values
        One value per tile.
    dims, slide_mpp
        The slide's level-0 (width, height) and µm/px.
    map_mpp
        µm per map pixel (never finer than the slide's).

    Examples
    --------
    >>> import tempfile, os, tifffile
    >>> p = write_map_tiff(os.path.join(tempfile.mkdtemp(), "g.ome.tif"),
    ...                    np.array([[0, 0], [100, 0]]), 100, 100, np.array([1.0, 2.0]),
    ...                    dims=(200, 100), slide_mpp=0.5, map_mpp=5.0)
    >>> im = tifffile.imread(p)  # 100 x 50 µm at 5 µm/px
    >>> im.shape, im[0, ::5].tolist()
    ((10, 20), [1.0, 1.0, 2.0, 2.0])
    """
    import tifffile

    from ..atomic import atomic_path

    coords = np.asarray(coords, np.float64).reshape(-1, 2)
    if len(coords) == 0:
        raise ValueError("no tiles to map")
    map_mpp = max(float(map_mpp), float(slide_mpp))
    px0 = map_mpp / slide_mpp  # level-0 pixels per map pixel
    w0, h0 = dims
    grid = _grid(coords, stride0, np.asarray(values, np.float32))
    origin = (coords[:, 0].min() + (size0 - stride0) / 2,
              coords[:, 1].min() + (size0 - stride0) / 2)
    def shape(scale: int) -> tuple[int, int]:
        return (max(1, int(np.ceil(h0 / (px0 * scale)))),
                max(1, int(np.ceil(w0 / (px0 * scale)))))

    shapes = [shape(1)]
    while max(shapes[-1]) > TIFF_TILE:
        shapes.append(shape(2 ** len(shapes)))
    meta = {"axes": "YX", "Name": gene or Path(path).name,
            "PhysicalSizeX": map_mpp, "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": map_mpp, "PhysicalSizeYUnit": "µm"}
    with atomic_path(path, suffix=".ome.tif") as tmp, \
            tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as tw:
        for k, hw in enumerate(shapes):
            scale = 2 ** k
            tw.write(_tiles(grid, origin, stride0, px0 * scale, hw), shape=hw,
                     dtype=np.float32, tile=(TIFF_TILE, TIFF_TILE), compression="zlib",
                     photometric="minisblack", subifds=len(shapes) - 1 if k == 0 else None,
                     subfiletype=1 if k else 0,
                     resolution=(1e4 / (map_mpp * scale), 1e4 / (map_mpp * scale)),
                     resolutionunit="CENTIMETER", metadata=meta if k == 0 else None)
    return Path(path)
