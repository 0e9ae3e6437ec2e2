"""Predictions as QuPath objects (issue 22, item 3): a GeoJSON FeatureCollection of square
tiles (or spots) in level-0 pixel coordinates, every predicted gene a measurement.

QuPath's *File > Import objects* reads it: each feature becomes a tile object (a detection)
whose ``measurements`` hold the genes, so *Measure > Show measurement maps* colours the
slide by any gene. :func:`write_tiles_geojson` streams the file feature by feature, so
50,000 tiles x 250 genes (about 180 MB at 4 decimals) never sit in memory as one object;
values are rounded to ``decimals`` (the models' own error is far larger) and missing ones
written as ``null`` (QuPath shows NaN).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["tiles_geojson", "write_tiles_geojson"]


def _feature(x: float, y: float, size0: float, genes: Sequence[str], values: np.ndarray,
             decimals: int | None) -> dict[str, Any]:
    ring = [[x, y], [x + size0, y], [x + size0, y + size0], [x, y + size0], [x, y]]

    def num(m: float) -> float | None:
        if not math.isfinite(m):
            return None
        return round(m, decimals) if decimals is not None else m

    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"objectType": "tile", "isLocked": True,
                           "measurements": {g: num(float(m)) for g, m in zip(genes, values)}}}


def tiles_geojson(coords: np.ndarray, size0: float, values: np.ndarray,
                  genes: list[str], *, decimals: int | None = None) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of square tiles (level-0 pixels) as QuPath imports it:
    ``properties = {"objectType": "tile", "measurements": {gene: value}}``.

    Examples
    --------
    >>> g = tiles_geojson(np.array([[0, 0]]), 10.0, np.array([[1.5]]), ["A"])
    >>> f = g["features"][0]
    >>> f["geometry"]["coordinates"][0][2], f["properties"]["measurements"]
    ([10.0, 10.0], {'A': 1.5})
    """
    return {"type": "FeatureCollection", "features": [
        _feature(float(x), float(y), size0, genes, v, decimals)
        for (x, y), v in zip(np.asarray(coords, float), np.asarray(values, float))]}


def write_tiles_geojson(path: str | Path, coords: np.ndarray, size0: float,
                        values: np.ndarray, genes: Sequence[str], *,
                        decimals: int | None = 4) -> Path:
    """Write :func:`tiles_geojson` to ``path`` one feature at a time (atomically).

    Raises ``ValueError`` when ``values`` has not one row per tile and one column per gene.
    """
    from ..atomic import atomic_path

    coords = np.asarray(coords, float).reshape(-1, 2)
    values = np.asarray(values, float)
    if values.shape != (len(coords), len(genes)):
        raise ValueError(f"values of shape {values.shape} for {len(coords)} tiles x "
                         f"{len(genes)} genes")
    genes = [str(g) for g in genes]
    num = "%r" if decimals is None else f"%.{int(decimals)}f"
    # one %-format per tile (C speed) instead of a dict and a json.dumps per tile
    tmpl = ('{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[' +
            ",".join(["[%r,%r]"] * 5) + ']]},"properties":{"objectType":"tile",'
            '"isLocked":true,"measurements":{' +
            ",".join(f"{json.dumps(g)}:{num}" for g in genes) + "}}}")
    finite = np.isfinite(values).all(axis=1)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write('{"type": "FeatureCollection", "features": [\n')
        for i, ((x, y), v) in enumerate(zip(coords.tolist(), values)):
            if i:
                f.write(",\n")
            if finite[i]:
                x1, y1 = x + size0, y + size0
                f.write(tmpl % (x, y, x1, y, x1, y1, x, y1, x, y, *v.tolist()))
            else:  # NaN as null: the slow path, for the rare tile that has one
                f.write(json.dumps(_feature(x, y, size0, genes, v, decimals),
                                   separators=(",", ":")))
        f.write("\n]}\n")
    return Path(path)
