"""Predictions as a SpatialData zarr store (issue 22, item 1), for napari-spatialdata,
squidpy and the rest of scverse.

One store holds, per section (or slide) ``S``:

- ``images/S_he`` — the H&E as a multiscale image (levels halve until the shorter side is
  under 512 px), read from the slide chunk by chunk and written as it is read, so a giant
  slide never sits in memory; ``image_mpp`` writes a coarser pyramid level of the slide
  instead of level 0, placed by a scale transformation;
- ``shapes/S_spots`` (circles of the spot's size) or ``shapes/S_tiles`` (squares of the
  tile's size), in the slide's level-0 pixels;
- ``tables/table`` — one row per spot or tile: ``X`` the predicted expression, the layers
  the input had (``measured``, ``lower``/``upper`` intervals), ``obs`` with the region and
  instance ids that tie each row to its shape, and ``obsm["spatial"]`` the centres in
  level-0 pixels.

A single section lives in the ``global`` coordinate system (level-0 pixels of its slide);
several sections each get a coordinate system named after them, as their pixels are not
comparable. ``spatialdata`` is an optional dependency (``pip install 'histoexpr[spatial]'``).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _keys as K
from ..atomic import json_safe, output_error
from ..errors import InputError
from ..expression.transforms import dense

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

__all__ = ["TABLE", "image_element", "require_spatialdata", "shapes_element",
           "spot_diameter_px", "write_spatialdata", "write_spots_store"]

TABLE = "table"
#: image chunks (pixels a side) read from the slide and written per zarr chunk
CHUNK = 1024
#: the multiscale pyramid stops once the shorter side would drop below this
MIN_LEVEL_SIDE = 512
#: physical spot diameters by platform (µm): Visium 55 µm; legacy ST (her2st) 100 µm
SPOT_DIAMETER_UM = {"visium": 55.0, "legacy_st": 100.0}


def require_spatialdata() -> Any:
    """The ``spatialdata`` module, or an :class:`InputError` that says how to install it."""
    import warnings

    try:
        # the readers and writers are imported here, once, without the deprecation notices
        # their dependencies (ome-zarr, xarray) print on import: they are not the user's
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            import spatialdata
            import spatialdata._io
    except ImportError as e:
        raise InputError(
            f"writing or reading SpatialData needs the `spatialdata` package ({e}); "
            "install it with `pip install 'histoexpr[spatial]'`") from e
    return spatialdata


def image_element(section: str) -> str:
    return f"{section}_he"


def shapes_element(section: str, shape: str) -> str:
    return f"{section}_{'spots' if shape == 'circle' else 'tiles'}"


def spot_diameter_px(info: Mapping[str, Any], xy: np.ndarray) -> float:
    """A section's spot diameter in its image's pixels: the platform's (Visium 55 µm,
    legacy ST 100 µm) over its µm/px, else 0.8 x the spot spacing (as the maps draw it)."""
    from ..plot.spatial import estimate_spot_diameter

    um = SPOT_DIAMETER_UM.get(str(info.get("platform", "")).lower())
    mpp = info.get("mpp")
    if um and mpp:
        return um / float(mpp)
    d = estimate_spot_diameter(xy)
    return float(d) if d else 1.0


@functools.lru_cache(maxsize=4)
def _slide(path: str, mpp: float | None) -> Any:
    from ..slide import open_slide

    return open_slide(path, mpp=mpp)


def _image(path: str | Path, mpp: float | None, image_mpp: float | None) -> tuple[Any, float]:
    """The slide as a lazy ``(c, y, x)`` dask array (one read per chunk) at the pyramid
    level closest to ``image_mpp`` (level 0 when ``None``), and that level's downsample."""
    import dask.array as da

    s = _slide(str(path), mpp)
    level = 0 if not image_mpp else s.best_level_for_downsample(image_mpp / s.mpp)
    W, H = s.level_dimensions[level]
    ds = s.level_downsamples[level]

    def split(n: int) -> tuple[int, ...]:
        return tuple(min(CHUNK, n - i) for i in range(0, n, CHUNK))

    def block(block_info: dict | None = None) -> np.ndarray:
        (_, _), (y0, y1), (x0, x1) = block_info[None]["array-location"]
        rgb = _slide(str(path), mpp).read_region(round(x0 * ds), round(y0 * ds), x1 - x0,
                                                 y1 - y0, level)
        return np.ascontiguousarray(np.moveaxis(rgb, -1, 0))

    arr = da.map_blocks(block, chunks=((3,), split(H), split(W)), dtype=np.uint8,
                        meta=np.empty((0, 0, 0), np.uint8))
    return arr, ds


def _no_autoshard() -> Any:
    """anndata's present default for zarr v3 tables (no sharding), said out loud so it does
    not warn that the default will change (readers of older zarr then still read them)."""
    import contextlib

    import anndata as ad

    if "auto_shard_zarr_v3" in dir(ad.settings):
        return ad.settings.override(auto_shard_zarr_v3=False)
    return contextlib.nullcontext()


def _scale_factors(h: int, w: int) -> list[int]:
    out: list[int] = []
    while min(h, w) // 2 ** (len(out) + 1) >= MIN_LEVEL_SIDE and len(out) < 8:
        out.append(2)
    return out


def _shapes(models: Any, xy: np.ndarray, size: float, shape: str, cs: str, ids: pd.Index):
    from spatialdata.transformations import Identity

    if shape == "circle":
        return models.ShapesModel.parse(xy, geometry=0, radius=np.full(len(xy), size / 2),
                                        index=ids, transformations={cs: Identity()})
    import geopandas as gpd
    from shapely import box

    h = size / 2
    polys = box(xy[:, 0] - h, xy[:, 1] - h, xy[:, 0] + h, xy[:, 1] + h)
    gdf = gpd.GeoDataFrame({"geometry": polys}, index=ids)
    return models.ShapesModel.parse(gdf, transformations={cs: Identity()})


def write_spatialdata(
    path: str | Path,
    table: AnnData,
    *,
    images: Mapping[str, tuple[str | Path | None, float | None]],
    shape: str,
    size_px: Mapping[str, float],
    image_mpp: float | None = None,
    uns: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``table``'s predictions with their sections' images and shapes as one store.

    Parameters
    ----------
    path
        The store (``.zarr`` folder); replaced whole when it exists, written to a temporary
        folder beside it first so an interrupted write leaves the old store or none.
    table
        Spots or tiles x genes: ``X`` predicted, any layers (kept), ``obs`` with ``x``,
        ``y`` (centres, level-0 pixels) and ``slide_id``.
    images
        ``{section: (slide path, µm/px or None)}``; a section whose path is ``None`` gets
        no image (logged).
    shape
        ``"circle"`` (spots: ``size_px`` is the diameter) or ``"square"`` (tiles: the side).
    size_px
        ``{section: size in level-0 pixels}``.
    image_mpp
        Write the slide's pyramid level nearest this µm/px (not finer) instead of level 0.
    """
    sd = require_spatialdata()
    import anndata as ad
    import dask
    from spatialdata import models
    from spatialdata.transformations import Identity, Scale

    if shape not in ("circle", "square"):
        raise InputError(f"shape must be 'circle' or 'square', not {shape!r}")
    for k in (K.X, K.Y, K.SLIDE_ID):
        if k not in table.obs:
            raise InputError(f"the predictions lack obs[{k!r}]; cannot place them on the image")
    sections = list(dict.fromkeys(table.obs[K.SLIDE_ID].astype(str)))
    single = len(sections) == 1
    out_images, out_shapes, parts = {}, {}, []
    meta: dict[str, dict[str, Any]] = {}  # per shapes element: what a reader needs back
    for s in sections:
        cs = "global" if single else s
        rows = np.flatnonzero(table.obs[K.SLIDE_ID].astype(str).to_numpy() == s)
        xy = table.obs[[K.X, K.Y]].to_numpy(float)[rows]
        ids = pd.RangeIndex(len(rows), name="instance_id")
        name = shapes_element(s, shape)
        out_shapes[name] = _shapes(models, xy, float(size_px[s]), shape, cs, ids)
        img_path, mpp = images.get(s, (None, None))
        meta[name] = {"section": s, "image": None}
        if img_path is None:
            logger.warning("section %s: no image path known; the store has no image for it", s)
        else:
            arr, ds = _image(img_path, mpp, image_mpp)
            meta[name] = {"section": s, "image": image_element(s),
                          "mpp": _slide(str(img_path), mpp).mpp * ds}
            t = Identity() if ds == 1 else Scale([ds, ds], axes=("y", "x"))
            out_images[image_element(s)] = models.Image2DModel.parse(
                arr, dims=("c", "y", "x"), c_coords=["r", "g", "b"],
                scale_factors=_scale_factors(*arr.shape[1:]) or None,
                chunks=(3, CHUNK, CHUNK), transformations={cs: t})
        part = table[rows]
        part = ad.AnnData(X=dense(part.X, np.float32), var=part.var[[]].copy(),
                          obs=part.obs.copy(),
                          layers={k: dense(v, np.float32) for k, v in part.layers.items()})
        part.obs["region"] = name
        part.obs["instance_id"] = np.arange(len(rows))
        part.obs_names = table.obs_names[rows]
        part.obsm[K.OBSM_SPATIAL] = xy
        parts.append(part)
    joined = parts[0] if single else ad.concat(parts, merge="same")
    joined.obs["region"] = pd.Categorical(joined.obs["region"].astype(str))
    for c in joined.obs.columns:  # zarr wants plain columns: objects as strings
        if joined.obs[c].dtype == object:
            joined.obs[c] = joined.obs[c].astype(str)
    joined.uns["histoexpr"] = json_safe({**dict(uns or {}), "sections": meta})
    regions = list(out_shapes)
    tbl = models.TableModel.parse(joined, region=regions[0] if single else regions,
                                  region_key="region",
                                  instance_key="instance_id")
    sdata = sd.SpatialData(images=out_images, shapes=out_shapes, tables={TABLE: tbl})
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        # the image graph reads the slide in this process: never ship it to a cluster
        with dask.config.set(scheduler="threads"), _no_autoshard():
            sdata.write(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise (output_error(path, e) or e) from e
    finally:
        _slide.cache_clear()
    logger.info("SpatialData store %s: %d section(s), %d image(s), %d rows x %d genes", path,
                len(sections), len(out_images), joined.n_obs, joined.n_vars)
    return path


def write_spots_store(path: str | Path, adata: AnnData, *,
                      uns: Mapping[str, Any] | None = None) -> Path:
    """:func:`write_spatialdata` for spot predictions (``st predict``, a run's held-out
    predictions): each section's image and µm/px from ``uns["sections"]``, spots as circles
    of the platform's spot size."""
    infos = adata.uns.get(K.UNS_SECTIONS, {})
    images, sizes = {}, {}
    for s in dict.fromkeys(adata.obs[K.SLIDE_ID].astype(str)):
        info = infos.get(s, {})
        rows = adata.obs[K.SLIDE_ID].astype(str).to_numpy() == s
        images[s] = (info.get("image_path"), info.get("mpp"))
        sizes[s] = spot_diameter_px(info, adata.obs[[K.X, K.Y]].to_numpy(float)[rows])
    return write_spatialdata(path, adata, images=images, shape="circle", size_px=sizes, uns=uns)
