"""``histoexpr view store.zarr``: the viewer of a SpatialData store (one section of it).

The store's H&E (its image element, read chunk by chunk from zarr) becomes the Deep Zoom
pyramid; its spots (circles) or tiles (polygons), carried into the image's pixels by the
store's transformations, become the hover raster; its table's ``X`` becomes one layer per
gene and, where the table has a ``measured`` layer (``st fit --spatialdata``: held-out
predictions beside the truth), each gene's measured values a layer beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["ngff_to_tiff", "store_view"]

#: tile side of the temporary TIFF libvips reads the store's image from
TIFF_TILE = 256


def store_view(store: Path, section: str | None = None) -> tuple[Any, dict[str, Any]]:
    """``(predictions, source)`` of one section of ``store`` for
    :func:`~histoexpr.plot.viewer.build_viewer` (``section`` may be omitted when the
    store holds one)."""
    import anndata as ad
    import pandas as pd

    from ..expression.sdata_in import (
        open_store,
        pick_table,
        place_region,
        table_regions,
        written_sections,
    )
    from ..expression.transforms import dense
    from .viewer_grid import spot_grid

    sdata = open_store(store)
    tname, tbl = pick_table(sdata, None, store)
    regions, rkey, ikey = table_regions(tbl, tname, store)
    written = written_sections(tbl)
    by_section = {str(written.get(r, {}).get("section", r)): r for r in regions}
    if section is None:
        if len(by_section) > 1:
            raise InputError(f"{store}: {len(by_section)} sections; choose one with --section "
                             f"({', '.join(sorted(by_section))})")
        section = next(iter(by_section))
    region = by_section.get(section) or (section if section in regions else None)
    if region is None:
        raise InputError(f"{store}: no section {section!r}; it has "
                         f"{', '.join(sorted(by_section))}")
    p = place_region(sdata, tbl, region, rkey, ikey, path=store, tname=tname)
    rows, xy = p["rows"], p["xy"]
    if p["radius"]:
        size, shape, unit = 2 * p["radius"] * p["px_per_unit"], "circle", "spot"
    else:
        size, shape, unit = p["side"] * p["px_per_unit"], "square", "tile"

    a = ad.AnnData(X=dense(tbl.X[rows], np.float32),
                   var=pd.DataFrame(index=tbl.var_names.astype(str)),
                   obs=pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]},
                                    index=tbl.obs_names[rows].astype(str)))
    if "measured" in tbl.layers:
        a.layers["measured"] = dense(tbl.layers["measured"][rows], np.float32)
    tag = f"_{section}" if len(by_section) > 1 else ""
    # no µm/px to check (the image is the store's own); its size is read by the viewer
    src = {"slide": store / "images" / p["image"], "mpp": None, "dims": None,
           "unit": unit,
           "dest": store.parent / f"{store.name.removesuffix('.zarr')}{tag}_viewer",
           "grid": lambda d: spot_grid(xy, size, d, shape=shape)}
    return a, src


def ngff_to_tiff(group: Path, dest: Path) -> Path:
    """Level 0 of an OME-Zarr image as a tiled JPEG TIFF libvips reads, written tile by
    tile (never the whole image in memory)."""
    import tifffile

    from ..slide.ngff import NGFFSlide

    with NGFFSlide(group, mpp=1.0) as s:
        w, h = s.dimensions

        def tiles():
            for y in range(0, h, TIFF_TILE):
                for x in range(0, w, TIFF_TILE):
                    yield s.read_region(x, y, TIFF_TILE, TIFF_TILE)

        tifffile.imwrite(dest, tiles(), shape=(h, w, 3), dtype=np.uint8,
                         tile=(TIFF_TILE, TIFF_TILE), photometric="rgb",
                         compression="jpeg", compressionargs={"level": 90})
    return dest
