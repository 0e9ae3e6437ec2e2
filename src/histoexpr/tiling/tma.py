"""Tissue microarrays: find the cores of a TMA slide, name them by grid position, link them
to patients, and split a slide's tile features into one bag per core.

hist2RNA's external cohort (seed 001, 2.1 and 3.3) is a TMA: 498 patients' 1 mm cores on 18
slides, predicted per core and summarised per patient. :func:`dearray` finds the cores on
the tissue mask (Gaussian blur + Otsu, :func:`~histoexpr.tissue.detect_tissue`): connected
tissue regions of about a core's area, their centroids grouped into rows and columns by the
gaps between them (a tilted or slightly irregular array still groups), named like QuPath's
TMA dearrayer: row letter, column number (``"B-7"``). :func:`core_bags` assigns each tile of
the slide's feature file to the core whose disc holds its centre.

Examples
--------
>>> import numpy as np
>>> y, x = np.mgrid[0:10, 0:10]
>>> _groups(np.array([1.0, 1.2, 5.0, 5.1, 9.0]), gap=2.0).tolist()
[0, 0, 1, 1, 2]
"""

from __future__ import annotations

import logging
import string
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["core_bags", "dearray", "read_core_map"]

logger = logging.getLogger(__name__)


def _groups(values: np.ndarray, gap: float) -> np.ndarray:
    """Group sorted-or-not 1-D positions: a new group starts where the next value is more
    than ``gap`` beyond the previous one; returns the group of each value, in value order."""
    order = np.argsort(values, kind="stable")
    steps = np.diff(values[order]) > gap
    g = np.concatenate([[0], np.cumsum(steps)])
    out = np.empty(len(values), int)
    out[order] = g
    return out


def _row_name(i: int) -> str:
    letters = string.ascii_uppercase
    return letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26]


def dearray(slide: Any, *, core_diameter_um: float | None = None, min_area: float = 0.25,
            max_area: float = 3.0) -> pd.DataFrame:
    """The cores of a TMA slide (a path or an open :class:`~histoexpr.slide.Slide`).

    Parameters
    ----------
    core_diameter_um
        Expected core diameter; default: the median of the tissue regions found.
    min_area, max_area
        Regions with an area outside ``[min_area, max_area]`` x the expected core area
        are not cores (dust, fragments, merged cores are logged and left out).

    Returns
    -------
    DataFrame, one row per core in reading order: ``core`` (``"A-1"``), ``row``, ``col``,
    ``x``, ``y`` (level-0 centre), ``diameter`` (level-0 px), ``area_fraction`` (of the
    expected core area).
    """
    from skimage import measure

    from ..slide import Slide, open_slide
    from ..tissue import detect_tissue

    sl = slide if isinstance(slide, Slide) else open_slide(slide)
    tm = detect_tissue(sl, mask_mpp=max(sl.mpp, 4.0))
    labels = measure.label(tm.mask)
    props = measure.regionprops(labels)
    if not props:
        raise InputError(f"{sl.path}: no tissue regions found; is this a TMA slide?")
    sx, sy = tm.scale
    areas = np.array([p.area for p in props], float)
    if core_diameter_um is not None:
        expected = np.pi * (core_diameter_um / sl.mpp / 2) ** 2 / (sx * sy)
    else:
        expected = float(np.median(areas))
    keep = [p for p, a in zip(props, areas) if min_area * expected <= a <= max_area * expected]
    if len(keep) < 2:
        raise InputError(f"{sl.path}: {len(keep)} core-sized tissue region(s) of "
                         f"{len(props)}; give --core-diameter if the cores are not the "
                         "typical region")
    dropped = len(props) - len(keep)
    if dropped:
        logger.info("%s: %d tissue region(s) are not core-sized and were left out",
                    sl.path.name, dropped)
    cy = np.array([p.centroid[0] for p in keep]) * sy
    cx = np.array([p.centroid[1] for p in keep]) * sx
    diam = np.array([p.equivalent_diameter_area for p in keep]) * np.sqrt(sx * sy)
    gap = 0.5 * float(np.median(diam))
    rows, cols = _groups(cy, gap), _groups(cx, gap)
    out = pd.DataFrame({"row": rows, "col": cols + 1, "x": cx, "y": cy, "diameter": diam,
                        "area_fraction": [p.area / expected for p in keep]})
    out.insert(0, "core", [f"{_row_name(r)}-{c}" for r, c in zip(rows, out["col"])])
    dup = out["core"][out["core"].duplicated()].tolist()
    if dup:
        raise InputError(f"{sl.path}: two cores fall on grid position(s) {', '.join(dup[:3])};"
                         " the array is too irregular to name by rows and columns")
    out = out.sort_values(["row", "col"]).reset_index(drop=True)
    logger.info("%s: %d cores in %d rows x %d columns", sl.path.name, len(out),
                out["row"].nunique(), out["col"].nunique())
    return out


def read_core_map(path: str | Path) -> dict[str, str]:
    """Core → patient from a CSV with columns ``core`` and ``patient`` (QuPath's TMA map
    export names them ``Name`` and ``Unique ID``, also accepted)."""
    tab = pd.read_csv(path, dtype=str)
    cols = {c.lower(): c for c in tab.columns}
    core = cols.get("core") or cols.get("name")
    patient = cols.get("patient") or cols.get("unique id") or cols.get("patient_id")
    if core is None or patient is None:
        raise InputError(f"{path}: a core map needs the columns core and patient (or QuPath's "
                         f"Name and Unique ID); it has {', '.join(tab.columns)}")
    tab = tab.dropna(subset=[core, patient])
    return dict(zip(tab[core].str.strip(), tab[patient].str.strip()))


def core_bags(features: str | Path, cores: pd.DataFrame, *, core_map: dict[str, str] | None
              = None, tile_size: float | None = None, min_tiles: int = 1) -> list[Any]:
    """One :class:`~histoexpr.features.bags.Bag` per core from a TMA slide's feature file:
    the tiles whose centre lies in the core's disc; the bag is named
    ``<slide>:<core>`` (and its patient is ``core_map[core]`` in ``bag.source``)."""
    from ..features.bags import Bag, bag_encoder
    from ..features.store import load_features

    coords, feats, attrs = load_features(features)
    if tile_size is None:
        spec, mpp0 = attrs.get("tile_spec") or {}, attrs.get("level0_mpp")
        tile_size = (float(spec["size_px"]) * float(spec["mpp"]) / float(mpp0)
                     if spec and mpp0 else 0.0)
    size = float(tile_size)
    centres = coords.astype(float) + size / 2
    slide = Path(features).stem
    out = []
    for c in cores.itertuples():
        inside = np.hypot(centres[:, 0] - c.x, centres[:, 1] - c.y) <= c.diameter / 2
        if inside.sum() < min_tiles:
            logger.info("%s core %s: %d tile(s); left out", slide, c.core, int(inside.sum()))
            continue
        patient = (core_map or {}).get(c.core)
        out.append(Bag(f"{slide}:{c.core}", feats[inside], coords[inside],
                       source=patient, encoder=bag_encoder(attrs)))
    if not out:
        raise InputError(f"{features}: no tile falls inside any core; were the features "
                         "made from this slide?")
    return out
