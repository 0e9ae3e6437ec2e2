"""``histoexpr view``: an interactive deep-zoom viewer of a ``predict-slide`` output, or of
an ``st predict`` output's spots (with their measured values where the counts were given)
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

from .. import _keys as K
from ..errors import InputError, MppMissingError
from ..expression.transforms import dense
from .viewer_grid import spot_grid, tile_grid

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


def _prediction(path: Path) -> tuple[Any, Path]:
    """The predictions to view: a predict-slide output folder (``<slide>.h5ad``), an
    ``st predict`` output folder holding one section (``<section>_predictions.h5ad``), or
    either ``.h5ad`` file itself."""
    import anndata as ad

    if path.is_file() and path.suffix == ".h5ad":
        found = [path]
    else:
        found = sorted(path.glob("*.h5ad"))
        if not found:
            raise InputError(f"{path}: no predictions to view (<slide>.h5ad of predict-slide, "
                             "<section>_predictions.h5ad of st predict); run `histoexpr "
                             "predict-slide SLIDE --model RUN --out DIR` and view DIR")
        if len(found) > 1:
            raise InputError(f"{path}: {len(found)} .h5ad files; view one of them (e.g. "
                             f"`histoexpr view {found[0]}`) or one predict-slide output "
                             "folder (OUT/<slide>/ of a multi-slide run)")
    a = ad.read_h5ad(found[0])
    spots = K.UNS_SECTIONS in a.uns and {K.X, K.Y, K.SLIDE_ID} <= set(a.obs.columns)
    if not spots and ("tile_spec" not in a.uns or "slide" not in a.uns):
        raise InputError(f"{found[0]}: neither a predict-slide output (no tile_spec / slide) "
                         "nor st predict's spots (no x, y and sections)")
    return a, found[0]


def _layer(values: np.ndarray, grid: dict[str, Any], path: Path,
           lohi: tuple[float, float] | None = None) -> tuple[float, float]:
    from matplotlib import colormaps
    from PIL import Image

    ok = np.isfinite(values)
    lo, hi = lohi or (np.percentile(values[ok], [2, 98]) if ok.any() else (0.0, 1.0))
    hi = hi if hi > lo else lo + 1e-6
    rgba = np.zeros((grid["rows"], grid["cols"], 4), np.uint8)
    norm = np.clip((values - lo) / (hi - lo), 0, 1)
    colours = (colormaps["viridis"](np.where(ok, norm, 0)) * 255).astype(np.uint8)
    colours[~ok, 3] = 0
    if "_cells" in grid:  # spots: each raster cell takes its spot's colour
        cells = grid["_cells"]
        flat = rgba.reshape(-1, 4)
        flat[cells >= 0] = colours[cells[cells >= 0]]
    else:
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
    if slide.is_dir():  # an OME-Zarr image (a SpatialData store's): a TIFF libvips reads
        from .viewer_sdata import ngff_to_tiff

        slide = ngff_to_tiff(slide, dest / ".slide.tif")
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
    (dest / ".slide.tif").unlink(missing_ok=True)
    return {"Image": {"xmlns": "http://schemas.microsoft.com/deepzoom/2008",
                      "Url": "slide_files/", "Format": "jpg", "Overlap": str(DZ_OVERLAP),
                      "TileSize": str(DZ_TILE),
                      "Size": {"Width": str(im.width), "Height": str(im.height)}}}


def _tiles_source(a: Any, folder: Path) -> dict[str, Any]:
    """What a predict-slide output is viewed on: its slide, tiles on their grid."""
    ts = a.uns["tile_spec"]
    return {"slide": Path(a.uns["slide"]["path"]), "mpp": float(ts["slide_mpp"]),
            "dims": tuple(int(v) for v in a.uns["slide"]["dimensions"]), "unit": "tile",
            "dest": (folder if folder.is_dir() else folder.parent) / "viewer",
            "grid": lambda dims: tile_grid(a.obs[["x", "y"]].to_numpy(float),
                                       float(ts["size_level0"]), float(ts["stride_level0"]))}


def _spots_source(a: Any, h5ad: Path) -> dict[str, Any]:
    """What st predict's spots are viewed on: the section's image, a disc per spot."""
    from ..st.sdata_out import spot_diameter_px

    section = str(a.obs[K.SLIDE_ID].iloc[0])
    info = a.uns[K.UNS_SECTIONS].get(section, {})
    if not info.get("image_path") or not info.get("mpp"):
        raise InputError(f"{h5ad}: section {section} records no image or µm/px to view "
                         "it on; pass the image with --slide")
    xy = a.obs[[K.X, K.Y]].to_numpy(float)
    return {"slide": Path(info["image_path"]), "mpp": float(info["mpp"]), "dims": None,
            "unit": "spot", "dest": h5ad.parent / f"{section}_viewer",
            "grid": lambda dims: spot_grid(xy, spot_diameter_px(info, xy), dims)}


def _check_mpp(slide: Path, want_mpp: float) -> None:
    """Refuse a slide whose µm/px is not the one the predictions were made at."""
    from ..slide import open_slide

    try:
        with open_slide(slide) as s:
            mpp = s.mpp
    except MppMissingError:  # a plain image: the predictions' µm/px was given, not read
        return
    if abs(mpp - want_mpp) > 0.01 * want_mpp:
        raise InputError(f"{slide}: {mpp:.4g} µm/px, but the predictions were made at "
                         f"{want_mpp:.4g} µm/px; view the slide they came from, or predict "
                         "this one")


def build_viewer(folder: str | Path, *, dest: str | Path | None = None,
                 slide: str | Path | None = None, genes: list[str] | None = None,
                 section: str | None = None) -> Path:
    """Build the viewer of a ``predict-slide`` output ``folder`` in ``dest`` (default
    ``folder/viewer``), or of an ``st predict`` output (one section's spots as discs on its
    image, default ``<section>_viewer`` beside it; with ``--counts`` each gene's measured
    values are a layer too, on the prediction's colour scale), or of a SpatialData store
    (``section`` chooses one of several; :mod:`.viewer_sdata`); returns ``index.html``.

    Raises
    ------
    InputError
        Not a predict-slide or st predict output; the slide is missing, unreadable, or not
        the one predicted (other dimensions or µm/px); genes the predictions lack; no
        OpenSeadragon.
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    from ..atomic import write_json
    from ..expression.sdata_in import is_spatialdata_store
    from ..slide import image_dimensions
    from .viewer_page import PAGE

    folder = Path(folder)
    osd = find_openseadragon()
    src = None
    if is_spatialdata_store(folder):
        from .viewer_sdata import store_view

        a, src = store_view(folder, section)
        h5ad = folder
    else:
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
    if src is None:
        src = _spots_source(a, h5ad) if "tile_spec" not in a.uns else _tiles_source(a, folder)
    slide = Path(slide) if slide is not None else src["slide"]
    if not slide.exists():
        raise InputError(f"{slide}: the predicted slide is not there any more; pass its "
                         "path with --slide")
    if src["mpp"] is not None:  # None: nothing to check (a store's own image)
        _check_mpp(slide, float(src["mpp"]))
    dest = Path(dest) if dest is not None else src["dest"]
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    dims = src["dims"] or image_dimensions(slide)
    dzi = _dzi(slide, dims, dest)
    shutil.copytree(osd, dest / "openseadragon")
    points = a.obs[["x", "y"]].to_numpy(float)
    grid = src["grid"](dims)
    X = dense(a.X)
    measured = (np.asarray(a.layers["measured"], float) if "measured" in a.layers else None)
    layers, ranges, values, shown = {}, {}, {}, []
    for g in genes:
        v = X[:, names.index(g)]
        pairs = [(g, v)]
        if measured is not None:  # truth beside the prediction, on one colour scale
            pairs.append((f"{g} (measured)", measured[:, names.index(g)]))
        both = np.concatenate([p[1] for p in pairs])
        lohi = (tuple(np.nanpercentile(both, [2, 98])) if measured is not None
                and np.isfinite(both).any() else None)
        for name, vals in pairs:
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
            ranges[name] = _layer(vals, grid, dest / "layers" / f"{safe}.png", lohi)
            layers[name] = f"layers/{safe}.png"
            values[name] = [round(float(x), 4) if np.isfinite(x) else None for x in vals]
            shown.append(name)
    data = {"dzi": dzi, "width": dims[0], "height": dims[1], "genes": shown,
            "layers": layers, "range": ranges, "values": values, "unit": src["unit"],
            "tiles": points.astype(int).tolist(),
            "colours": [to_hex(colormaps["viridis"](t)) for t in np.linspace(0, 1, 9)],
            "grid": {k: v for k, v in grid.items() if not k.startswith("_")}}
    (dest / "data.js").write_text("window.HISTOEXPR = " + json.dumps(data) + ";\n")
    page = PAGE.replace("__TITLE__", slide.name)
    (dest / "index.html").write_text(page, encoding="utf-8")
    write_json(dest / "viewer.json", {"predictions": str(h5ad.resolve()),
                                      "slide": str(slide.resolve()), "genes": shown,
                                      "openseadragon": str(osd)})
    return dest / "index.html"
