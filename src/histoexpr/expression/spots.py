"""Spot positions of spatial-transcriptomics sections.

:func:`read_spots` returns one table whatever the platform: ``spot_id``, ``x``, ``y``
(spot centre in full-resolution image pixels) and ``in_tissue``. Formats:

- legacy ST spot-detector selection tables (her2st ``<section>_selection.tsv``: ``x y new_x
  new_y pixel_x pixel_y selected``; ids ``"<x>x<y>"`` as in the counts files);
- 10x Visium ``tissue_positions.csv`` (Space Ranger >= 2.0, with header) and
  ``tissue_positions_list.csv`` (older, no header);
- any CSV/TSV with ``x``/``y`` (or ``pixel_x``/``pixel_y``) columns and optional
  ``spot_id``/``barcode`` and ``in_tissue``/``selected``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import _keys as K
from ..errors import InputError

__all__ = ["estimate_mpp_from_spots", "read_spots"]

VISIUM_COLUMNS = [
    "barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres",
]
#: legacy ST spots sit 200 µm apart centre to centre; Visium 100 µm
ST_SPACING_UM = 200.0


def _read_table(path: Path) -> pd.DataFrame:
    sep = "\t" if path.suffix.lower() in (".tsv", ".txt") or path.name.endswith(".tsv.gz") else ","
    try:
        df = pd.read_csv(path, sep=sep)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the spot table ({e})") from e
    if len(df.columns) == 1 and sep == ",":  # a tab-separated file named .csv
        df = pd.read_csv(path, sep="\t")
    return df


def read_spots(path: str | Path, *, only_in_tissue: bool = True) -> pd.DataFrame:
    """Read spot centres; returns columns ``spot_id, x, y, in_tissue`` (+ ``array_x/y``).

    Parameters
    ----------
    path
        A spot table in one of the formats above.
    only_in_tissue
        Keep only spots under tissue (``selected == 1`` / ``in_tissue == 1``).

    Raises
    ------
    InputError
        Unknown layout (the message lists the columns found and those expected), or
        non-numeric coordinates.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: spot file not found; check the path")
    df = _read_table(path)
    cols = {c.lower(): c for c in df.columns}
    if set(VISIUM_COLUMNS) - set(cols) and len(df.columns) == 6 and "barcode" not in cols:
        # tissue_positions_list.csv: no header row
        df = pd.read_csv(path, header=None, names=VISIUM_COLUMNS)
        cols = {c: c for c in df.columns}
    if {"pxl_row_in_fullres", "pxl_col_in_fullres"} <= set(cols):
        out = pd.DataFrame({
            K.SPOT_ID: df[cols["barcode"]].astype(str),
            K.X: df[cols["pxl_col_in_fullres"]],
            K.Y: df[cols["pxl_row_in_fullres"]],
            K.IN_TISSUE: df[cols["in_tissue"]].astype(bool),
            "array_x": df[cols["array_col"]],
            "array_y": df[cols["array_row"]],
        })
    elif {"pixel_x", "pixel_y", "x", "y"} <= set(cols):  # legacy ST selection table
        out = pd.DataFrame({
            K.SPOT_ID: [f"{int(a)}x{int(b)}" for a, b in zip(df[cols["x"]], df[cols["y"]])],
            K.X: df[cols["pixel_x"]],
            K.Y: df[cols["pixel_y"]],
            K.IN_TISSUE: df[cols["selected"]].astype(bool) if "selected" in cols else True,
            "array_x": df[cols["new_x"]] if "new_x" in cols else df[cols["x"]],
            "array_y": df[cols["new_y"]] if "new_y" in cols else df[cols["y"]],
        })
    elif {"x", "y"} <= set(cols) or {"pixel_x", "pixel_y"} <= set(cols):
        xc, yc = ("pixel_x", "pixel_y") if "pixel_x" in cols else ("x", "y")
        idc = next((cols[c] for c in ("spot_id", "barcode", "id") if c in cols), None)
        tc = next((cols[c] for c in ("in_tissue", "selected") if c in cols), None)
        out = pd.DataFrame({
            K.SPOT_ID: df[idc].astype(str) if idc else [str(i) for i in range(len(df))],
            K.X: df[cols[xc]],
            K.Y: df[cols[yc]],
            K.IN_TISSUE: df[tc].astype(bool) if tc else True,
        })
    else:
        raise InputError(
            f"{path}: unknown spot table layout (columns: {', '.join(map(str, df.columns[:8]))}); "
            "expected Visium tissue_positions, a legacy ST selection table, or x,y columns"
        )
    for c in (K.X, K.Y):
        out[c] = pd.to_numeric(out[c], errors="coerce")
    if out[[K.X, K.Y]].isna().any().any():
        raise InputError(f"{path}: some spot coordinates are not numbers")
    if only_in_tissue:
        out = out[out[K.IN_TISSUE]]
    if len(out) == 0:
        raise InputError(f"{path}: no spots{' under tissue' if only_in_tissue else ''}")
    return out.reset_index(drop=True)


def estimate_mpp_from_spots(spots: pd.DataFrame, *, spacing_um: float = ST_SPACING_UM) -> float:
    """Image µm/px from the spot grid: fit pixel position on array position (legacy ST:
    one array step is ``spacing_um`` = 200 µm), the only scale a her2st JPEG carries.

    Examples
    --------
    >>> df = pd.DataFrame({"x": [0.0, 290, 580], "y": [0.0, 0, 290],
    ...                    "array_x": [1.0, 2, 3], "array_y": [1.0, 1, 2]})
    >>> round(estimate_mpp_from_spots(df), 3)
    0.69
    """
    if not {"array_x", "array_y"} <= set(spots.columns) or len(spots) < 3:
        raise InputError(
            "the spot table has no array coordinates to derive the scale from; pass --mpp"
        )
    slopes = []
    for a, p in (("array_x", K.X), ("array_y", K.Y)):
        ax = spots[a].to_numpy(float)
        if np.ptp(ax) > 0:
            slopes.append(abs(np.polyfit(ax, spots[p].to_numpy(float), 1)[0]))
    if not slopes:
        raise InputError("all spots share one array position; cannot derive the scale")
    return spacing_um / float(np.mean(slopes))
