"""``histoexpr view``: an interactive deep-zoom viewer of a ``predict-slide`` output
(issue 22, item 5).

The folder it builds opens from disk (``index.html``) or from any static server:

- ``slide.dzi`` + ``slide_files/``: the full-resolution H&E as a Deep Zoom pyramid, made by
  libvips ``dzsave`` (pyvips; streamed, any slide size);
- ``layers/<gene>.png``: each gene's tile values as an image of one pixel per grid cell
  (viridis, transparent off the tiles), placed over the slide at its level-0 position;
- ``data.js``: the layers' positions, colour ranges, and every tile's values, for the
  hover read-out;
- ``openseadragon/``: the OpenSeadragon build the install step fetched from npm
  (``npm install openseadragon``; found under ``$HISTOEXPR_OPENSEADRAGON``,
  ``<venv>/share/histoexpr-js`` or ``./node_modules``);
- ``index.html``: the page (:mod:`.viewer_page`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MppMissingError

__all__ = ["MAX_VALUES", "build_viewer", "find_openseadragon"]

logger = logging.getLogger(__name__)

#: tile x gene values written for the hover read-out before genes are cut to the mapped ones
MAX_VALUES = 2_000_000
#: Deep Zoom tile side and overlap (OpenSeadragon's usual 254 + 1)
DZ_TILE, DZ_OVERLAP = 254, 1


def find_openseadragon() -> Path:
    """The folder holding ``openseadragon.min.js`` and ``images/`` (npm's build)."""
    rel = Path("node_modules") / "openseadragon" / "build" / "openseadragon"
    places = [Path(p) for p in [os.environ.get("HISTOEXPR_OPENSEADRAGON", "")] if p]
    places += [Path(sys.prefix) / "share" / "histoexpr-js" / rel, Path.cwd() / rel]
    for p in places:
        if (p / "openseadragon.min.js").is_file():
            return p
    raise InputError("OpenSeadragon is not installed: `make` fetches it (npm install "
                     "--prefix .venv/share/histoexpr-js openseadragon); or run `npm install "
                     "openseadragon` here, or set HISTOEXPR_OPENSEADRAGON to its build folder")


def _prediction(folder: Path) -> tuple[Any, Path]:
    import anndata as ad

    found = sorted(folder.glob("*.h5ad"))
    if not found:
        raise InputError(f"{folder}: no predict-slide output (<slide>.h5ad); run `histoexpr "
                         "predict-slide SLIDE --model RUN --out DIR` and view DIR")
    if len(found) > 1:
        raise InputError(f"{folder}: {len(found)} .h5ad files; view one predict-slide "
                         "output folder (OUT/<slide>/ of a multi-slide run)")
    a = ad.read_h5ad(found[0])
    if "tile_spec" not in a.uns or "slide" not in a.uns:
        raise InputError(f"{found[0]}: not a predict-slide output (no tile_spec / slide)")
    return a, found[0]


def _grid(coords: np.ndarray, size0: float, step: float) -> dict[str, Any]:
    col = np.rint((coords[:, 0] - coords[:, 0].min()) / step).astype(int)
    row = np.rint((coords[:, 1] - coords[:, 1].min()) / step).astype(int)
    rows, cols = int(row.max()) + 1, int(col.max()) + 1
    index = np.full(rows * cols, -1, np.int64)
    index[row * cols + col] = np.arange(len(coords))
    return {"x0": float(coords[:, 0].min() + (size0 - step) / 2),
            "y0": float(coords[:, 1].min() + (size0 - step) / 2),
            "step": float(step), "rows": rows, "cols": cols, "index": index.tolist(),
            "_row": row, "_col": col}


def _layer(values: np.ndarray, grid: dict[str, Any], path: Path) -> tuple[float, float]:
    from matplotlib import colormaps
    from PIL import Image

    ok = np.isfinite(values)
    lo, hi = (np.percentile(values[ok], [2, 98]) if ok.any() else (0.0, 1.0))
    hi = hi if hi > lo else lo + 1e-6
    rgba = np.zeros((grid["rows"], grid["cols"], 4), np.uint8)
    norm = np.clip((values - lo) / (hi - lo), 0, 1)
    colours = (colormaps["viridis"](np.where(ok, norm, 0)) * 255).astype(np.uint8)
    colours[~ok, 3] = 0
    rgba[grid["_row"], grid["_col"]] = colours
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba, "RGBA").save(path)
    return float(lo), float(hi)


def _dzi(slide: Path, dims: tuple[int, int], dest: Path) -> dict[str, Any]:
    try:
        import pyvips
    except (ImportError, OSError) as e:
        raise InputError(f"the viewer needs libvips: pip install 'histoexpr[viewer]' "
                         f"(pyvips with its binary) ({e})") from e
    try:
        im = pyvips.Image.new_from_file(str(slide), access="sequential")
    except pyvips.Error as e:
        raise InputError(f"{slide}: libvips cannot read it ({str(e).splitlines()[0]}); "
                         "export the slide as a pyramidal TIFF to view it") from e
    if (im.width, im.height) != tuple(dims):
        raise InputError(f"{slide}: {im.width} x {im.height} px, but the predictions were made "
                         f"on a {dims[0]} x {dims[1]} px slide; pass the slide they came from "
                         "(--slide)")
    if im.bands == 4:
        im = im.flatten(background=[255, 255, 255])
    im.dzsave(str(dest / "slide"), tile_size=DZ_TILE, overlap=DZ_OVERLAP,
              suffix=".jpg[Q=85]")
    return {"Image": {"xmlns": "http://schemas.microsoft.com/deepzoom/2008",
                      "Url": "slide_files/", "Format": "jpg", "Overlap": str(DZ_OVERLAP),
                      "TileSize": str(DZ_TILE),
                      "Size": {"Width": str(im.width), "Height": str(im.height)}}}


def build_viewer(folder: str | Path, *, dest: str | Path | None = None,
                 slide: str | Path | None = None, genes: list[str] | None = None) -> Path:
    """Build the viewer of a ``predict-slide`` output ``folder`` in ``dest`` (default
    ``folder/viewer``); returns ``index.html``.

    Raises
    ------
    InputError
        Not a predict-slide output; the slide is missing, unreadable, or not the one
        predicted (other dimensions or µm/px); genes the predictions lack; no OpenSeadragon.
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    from ..atomic import write_json
    from ..slide import open_slide
    from .viewer_page import PAGE

    folder = Path(folder)
    osd = find_openseadragon()
    a, h5ad = _prediction(folder)
    names = list(map(str, a.var_names))
    if genes:
        missing = [g for g in genes if g not in names]
        if missing:
            raise InputError(f"{h5ad}: no predictions for {', '.join(missing)} (it has e.g. "
                             f"{', '.join(names[:5])})")
    else:
        genes = names
        if a.n_obs * len(genes) > MAX_VALUES:
            record = folder / "predict_slide.json"
            mapped = (json.loads(record.read_text()).get("map_genes") if record.is_file()
                      else None) or names[:max(1, MAX_VALUES // a.n_obs)]
            logger.warning("%d tiles x %d genes is too many values for one page; showing "
                           "the mapped genes (%s); pass --genes to choose", a.n_obs,
                           len(names), ", ".join(mapped))
            genes = list(mapped)
    slide = Path(slide) if slide is not None else Path(a.uns["slide"]["path"])
    if not slide.is_file():
        raise InputError(f"{slide}: the predicted slide is not there any more; pass its "
                         "path with --slide")
    ts = a.uns["tile_spec"]
    try:
        with open_slide(slide) as s:
            mpp = s.mpp
    except MppMissingError:  # a plain image: the predictions' µm/px was given, not read
        mpp = float(ts["slide_mpp"])
    if abs(mpp - float(ts["slide_mpp"])) > 0.01 * float(ts["slide_mpp"]):
        raise InputError(f"{slide}: {mpp:.4g} µm/px, but the predictions were made at "
                         f"{float(ts['slide_mpp']):.4g} µm/px; view the slide they came "
                         "from, or predict this one")
    dest = Path(dest) if dest is not None else folder / "viewer"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    dims = tuple(int(v) for v in a.uns["slide"]["dimensions"])
    dzi = _dzi(slide, dims, dest)
    shutil.copytree(osd, dest / "openseadragon")
    coords = a.obs[["x", "y"]].to_numpy(float)
    grid = _grid(coords, float(ts["size_level0"]), float(ts["stride_level0"]))
    X = np.asarray(a.X.toarray() if hasattr(a.X, "toarray") else a.X, float)
    layers, ranges, values = {}, {}, {}
    for g in genes:
        v = X[:, names.index(g)]
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in g)
        ranges[g] = _layer(v, grid, dest / "layers" / f"{safe}.png")
        layers[g] = f"layers/{safe}.png"
        values[g] = [round(float(x), 4) if np.isfinite(x) else None for x in v]
    data = {"dzi": dzi, "width": dims[0], "height": dims[1], "genes": genes,
            "layers": layers, "range": ranges, "values": values,
            "tiles": coords.astype(int).tolist(),
            "colours": [to_hex(colormaps["viridis"](t)) for t in np.linspace(0, 1, 9)],
            "grid": {k: v for k, v in grid.items() if not k.startswith("_")}}
    (dest / "data.js").write_text("window.HISTOEXPR = " + json.dumps(data) + ";\n")
    page = PAGE.replace("__TITLE__", slide.name)
    (dest / "index.html").write_text(page, encoding="utf-8")
    write_json(dest / "viewer.json", {"predictions": str(h5ad.resolve()),
                                      "slide": str(slide.resolve()), "genes": genes,
                                      "openseadragon": str(osd)})
    return dest / "index.html"
