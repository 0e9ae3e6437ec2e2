"""A SpatialData zarr store as spatial sections (issue 22, item 1: SpatialData in).

``histoexpr st fit --data store.zarr`` reads a store such as ``spatialdata-io`` makes from
Space Ranger (Visium) output, or one this package wrote: the table's counts, the spots (a
shapes element the table annotates: circles or polygons, one section per element) and
the H&E image that shares their coordinate system. Spot centres are carried from the
shapes' coordinate system into the image's pixels with the store's own transformations.
Options ride on a query, as for HEST folders:

    --data "visium.zarr?table=table&image=V1_full_image&coordinate_system=global&mpp=0.2738"

- ``table`` — which table (default: the only one, or ``table``);
- ``image`` — which image (default: the finest image in the spots' coordinate system);
- ``coordinate_system`` — where spots and image meet (default: ``global`` when both are
  in it, else the first they share);
- ``mpp`` — the image's µm/px; default: what the image records (an NGFF axis unit), or
  what this package wrote beside the table, or from the spot size when it is known
  (``spot_diameter_um``, or Visium's 55 µm for a store in spatialdata-io's Visium layout:
  its ``downscaled_hires/lowres`` coordinate systems or Space Ranger scale factors), else an
  error asking for it;
- ``patient`` — a patient id for every section (default: the section's id; an ``obs``
  column ``patient_id`` or ``patient`` wins).

The image must be the H&E (8-bit RGB); patches are read from it through
:class:`~histoexpr.slide.NGFFSlide` at ``store.zarr/images/<image>``. A Visium store
without the full-resolution image falls back to its ``hires`` image (about 4x coarser):
that is logged, since patches cut from it hold far less detail.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from .. import _keys as K
from ..errors import InputError
from .section import SPATIAL_READERS, build_section, check_counts, concat_sections, unique_genes
from .visium import VISIUM_SPOT_DIAMETER_UM

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

__all__ = ["element_affine", "is_spatialdata_store", "pick_image", "pick_table", "read_spatialdata",
           "shape_centres", "spatialdata_spec", "written_sections"]

#: images coarser than this (µm/px) make poor patches: warned about
COARSE_MPP = 1.5


def is_spatialdata_store(path: Path) -> bool:
    """A zarr folder with a ``tables/`` group (what ``SpatialData.write`` makes)."""
    return path.is_dir() and (path / "tables").is_dir() and (
        (path / "zarr.json").is_file() or (path / ".zgroup").is_file())


#: the query keys a store accepts, and their types
QUERY_KEYS = {"table": str, "image": str, "coordinate_system": str, "mpp": float,
              "spot_diameter_um": float, "patient": str, "section": str}


def spatialdata_spec(root: Path, query: dict[str, list[str]]) -> dict[str, Any]:
    """The section spec of a store and its ``?key=value`` options (see the module docstring).

    >>> spatialdata_spec(Path("v.zarr"), {"image": ["V1_full_image"], "mpp": ["0.27"]})
    {'platform': 'spatialdata', 'path': 'v.zarr', 'image': 'V1_full_image', 'mpp': 0.27}
    """
    spec: dict[str, Any] = {"platform": "spatialdata", "path": str(root)}
    for key, values in query.items():
        key = {"cs": "coordinate_system"}.get(key, key)
        if key not in QUERY_KEYS:
            raise InputError(f"{root}: unknown option {key!r} for a SpatialData store; use "
                             f"{', '.join(QUERY_KEYS)}")
        if len(values) != 1:
            raise InputError(f"{root}: give one value for {key} (got {values})")
        try:
            spec[key] = QUERY_KEYS[key](values[0])
        except ValueError as e:
            raise InputError(f"{root}: {key}={values[0]!r} is not a number") from e
    return spec


def element_affine(element: Any, cs: str) -> np.ndarray:
    """3x3 matrix taking ``element``'s (x, y) to coordinate system ``cs``."""
    from spatialdata.transformations import get_transformation

    t = get_transformation(element, to_coordinate_system=cs)
    return np.asarray(t.to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")), float)


def _systems(element: Any) -> list[str]:
    from spatialdata.transformations import get_transformation

    return list(get_transformation(element, get_all=True))


def pick_table(sdata: Any, name: str | None, path: Path) -> tuple[str, Any]:
    tables = dict(sdata.tables)
    if not tables:
        raise InputError(f"{path}: the SpatialData store has no table (no expression to fit); "
                         "write one with TableModel annotating the spots' shapes")
    if name is not None:
        if name not in tables:
            raise InputError(f"{path}: no table {name!r}; the store has "
                             f"{', '.join(sorted(tables))}")
        return name, tables[name]
    if len(tables) == 1:
        return next(iter(tables.items()))
    if "table" in tables:
        return "table", tables["table"]
    raise InputError(f"{path}: the store has {len(tables)} tables "
                     f"({', '.join(sorted(tables))}); choose one with ?table=NAME")


def pick_image(sdata: Any, shapes: Any, *, image: str | None, cs: str | None, path: Path,
                region: str) -> tuple[str, str]:
    """(image name, coordinate system) the spots of ``region`` are placed on."""
    systems = _systems(shapes)
    if cs is not None and cs not in systems:
        raise InputError(f"{path}: shapes {region!r} are not in coordinate system {cs!r}; "
                         f"they are in {', '.join(systems)}")
    if image is not None:
        if image not in sdata.images:
            raise InputError(f"{path}: no image {image!r}; the store has "
                             f"{', '.join(sorted(sdata.images)) or 'no images'}")
        shared = [c for c in ([cs] if cs else systems) if c in _systems(sdata.images[image])]
        if not shared:
            raise InputError(f"{path}: image {image!r} and shapes {region!r} share no "
                             f"coordinate system (shapes: {', '.join(systems)}); "
                             "the spots cannot be placed on it")
        return image, ("global" if "global" in shared else shared[0])
    order = [cs] if cs else sorted(systems, key=lambda c: c != "global")
    others: list[str] = []
    for c in order:
        cands = [(n, im) for n, im in sdata.images.items() if c in _systems(im)]
        # an H&E is 8-bit RGB: Xenium's morphology (16-bit fluorescence) is passed over
        others += [f"{n} ({_kind(im)})" for n, im in cands if not _is_rgb(im)]
        cands = [(n, im) for n, im in cands if _is_rgb(im)]
        if cands:  # the finest: the smallest coordinate-system units per image pixel
            best = min(cands, key=lambda kv: abs(np.linalg.det(
                element_affine(kv[1], c)[:2, :2])))
            return best[0], c
    raise InputError(
        f"{path}: no H&E (8-bit RGB) image shares a coordinate system with the spots "
        f"{region!r} ({', '.join(order)})"
        + (f"; there are only {', '.join(others)}" if others else "")
        + "; the store lacks the H&E: add it (Image2DModel; spatialdata-io's "
        "xenium_aligned_image for Xenium) or read the section from its Space Ranger folder")


def _looks_visium(sdata: Any, tbl: Any) -> bool:
    """spatialdata-io's Visium layout: its ``[<id>_]downscaled_hires/lowres`` coordinate
    systems, or scanpy's ``uns["spatial"]`` scale factors with ``spot_diameter_fullres``."""
    if any(str(c).endswith(("downscaled_hires", "downscaled_lowres"))
           for c in sdata.coordinate_systems):
        return True
    spatial = tbl.uns.get("spatial")
    return isinstance(spatial, dict) and any(
        isinstance(v, dict) and "spot_diameter_fullres" in (v.get("scalefactors") or {})
        for v in spatial.values())


def _level0(image: Any) -> Any:
    """The full-resolution array of an image element (a multiscale one's first level)."""
    if hasattr(image, "children"):
        return next(iter(image.children.values()))["image"]
    return image


def _is_rgb(image: Any) -> bool:
    a = _level0(image)
    n_c = a.sizes.get("c", 1) if hasattr(a, "sizes") else 1
    return a.dtype == np.uint8 and n_c in (1, 3, 4)


def _kind(image: Any) -> str:
    a = _level0(image)
    return f"{a.sizes.get('c', 1)}-channel {a.dtype}"


def shape_centres(shapes: Any) -> tuple[np.ndarray, float | None]:
    """Centres (N, 2) of a shapes element and the circles' radius (None for polygons)."""
    geom = shapes.geometry
    if (geom.geom_type == "Point").all():
        xy = np.c_[geom.x.to_numpy(float), geom.y.to_numpy(float)]
        r = shapes["radius"].to_numpy(float) if "radius" in shapes else None
        return xy, (float(np.median(r)) if r is not None and len(r) else None)
    c = geom.centroid
    return np.c_[c.x.to_numpy(float), c.y.to_numpy(float)], None


def open_store(path: Path) -> Any:
    """``spatialdata.read_zarr(path)``, or an :class:`InputError` saying what is wrong."""
    from ..st.sdata_out import require_spatialdata

    sd = require_spatialdata()
    if not is_spatialdata_store(path):
        raise InputError(f"{path}: not a SpatialData zarr store (a folder with tables/ and "
                         "zarr.json); write one with SpatialData.write or spatialdata-io")
    try:
        return sd.read_zarr(path)
    except Exception as e:  # zarr/ome-zarr raise many kinds for a damaged store
        raise InputError(f"{path}: cannot read the SpatialData store ({e})") from e


def written_sections(tbl: Any) -> dict[str, dict[str, Any]]:
    """What this package wrote beside a store's table, by shapes element: the section's
    name and its image's µm/px (``{}`` for stores made elsewhere)."""
    return (tbl.uns.get("histoexpr") or {}).get("sections") or {}


def table_regions(tbl: Any, tname: str, path: Path) -> tuple[list[str], str, str]:
    """The elements a table annotates, its region key and its instance key."""
    attrs = tbl.uns.get("spatialdata_attrs") or {}
    regions = attrs.get("region")
    regions = [regions] if isinstance(regions, str) else list(regions or [])
    rkey, ikey = attrs.get("region_key"), attrs.get("instance_key")
    if not regions or rkey not in tbl.obs or ikey not in tbl.obs:
        raise InputError(f"{path}: table {tname!r} annotates no elements (its "
                         "spatialdata_attrs name no region/region_key/instance_key)")
    return [str(r) for r in regions], str(rkey), str(ikey)


def place_region(sdata: Any, tbl: Any, region: str, rkey: str, ikey: str, *, path: Path,
                 tname: str, image: str | None = None,
                 coordinate_system: str | None = None) -> dict[str, Any]:
    """The table rows of one shapes element and their centres in the pixels of the image
    they are placed on: ``rows``, ``instances``, ``xy``, ``radius`` (circles, in the shapes'
    units; ``None`` for polygons), ``side`` (polygons: the median square root of their
    area), ``image``, ``coordinate_system``, ``px_per_unit`` (image pixels per shapes unit).
    """
    if region not in sdata.shapes:
        kind = "points" if region in sdata.points else "labels" if region in sdata.labels \
            else "no element"
        raise InputError(f"{path}: table {tname!r} annotates {region!r}, which is {kind}; "
                         "spots must be a shapes element (circles or polygons)")
    shapes = sdata.shapes[region]
    rows = np.flatnonzero(tbl.obs[rkey].astype(str).to_numpy() == region)
    inst = tbl.obs[ikey].to_numpy()[rows]
    known = shapes.index.get_indexer(inst)
    if (known < 0).any():
        raise InputError(f"{path}: {int((known < 0).sum())} row(s) of table {tname!r} "
                         f"name instances that shapes {region!r} lacks (e.g. "
                         f"{inst[known < 0][:3].tolist()})")
    img_name, cs = pick_image(sdata, shapes, image=image, cs=coordinate_system, path=path,
                              region=region)
    mine = shapes.iloc[known]
    xy_s, radius = shape_centres(mine)
    to_px = np.linalg.inv(element_affine(sdata.images[img_name], cs)) @ \
        element_affine(shapes, cs)
    xy = (np.c_[xy_s, np.ones(len(xy_s))] @ to_px.T)[:, :2]
    side = None if radius else float(np.median(np.sqrt(mine.geometry.area.to_numpy())))
    return {"rows": rows, "instances": inst, "xy": xy, "radius": radius, "side": side,
            "image": img_name, "coordinate_system": cs,
            "px_per_unit": float(np.sqrt(abs(np.linalg.det(to_px[:2, :2]))))}


def read_spatialdata(
    path: str | Path,
    *,
    table: str | None = None,
    image: str | None = None,
    coordinate_system: str | None = None,
    mpp: float | None = None,
    spot_diameter_um: float | None = None,
    patient: str | None = None,
    section: str | None = None,
) -> AnnData:
    """Read the sections of a SpatialData store (see the module docstring).

    Raises
    ------
    InputError
        Not a store; no table, or an unknown one; a table that annotates no shapes; no
        image in the spots' coordinate system (the store lacks the H&E), or an unknown
        image or coordinate system; pixel size unknown.
    """
    from ..slide.ngff import NGFFSlide, ngff_mpp

    path = Path(path)
    sdata = open_store(path)
    tname, tbl = pick_table(sdata, table, path)
    regions, rkey, ikey = table_regions(tbl, tname, path)
    counts_all = tbl.layers[K.LAYER_COUNTS] if K.LAYER_COUNTS in tbl.layers else tbl.X
    counts_all = sp.csr_matrix(counts_all)
    check_counts(counts_all.data, f"{path} (table {tname})")
    genes = unique_genes(tbl.var_names, path)
    written = written_sections(tbl)
    out = []
    for region in regions:
        p = place_region(sdata, tbl, region, rkey, ikey, path=path, tname=tname, image=image,
                         coordinate_system=coordinate_system)
        rows, inst, xy, radius = p["rows"], p["instances"], p["xy"], p["radius"]
        img_name, cs, px_per_unit = p["image"], p["coordinate_system"], p["px_per_unit"]
        img_path = path / "images" / img_name
        um, source = spot_diameter_um, "spot_diameter_um"
        if um is None and _looks_visium(sdata, tbl):
            um, source = VISIUM_SPOT_DIAMETER_UM, "Visium's 55 µm spot"
        found = None if mpp is not None else ngff_mpp(img_path)
        ours = written.get(str(region), {})
        if mpp is not None:
            the_mpp, mpp_source = float(mpp), "given"
        elif found is not None:
            the_mpp, mpp_source = found, "OME-NGFF axis unit"
        elif ours.get("mpp") and ours.get("image") == img_name:
            the_mpp, mpp_source = float(ours["mpp"]), "histoexpr's table metadata"
        elif um is not None and radius:
            the_mpp = um / (2 * radius * px_per_unit)
            mpp_source = f"{source} / the circles' diameter in image pixels"
        else:
            raise InputError(
                f"{path}: the pixel size of image {img_name!r} is unknown (the store records "
                "none); give it: --data \"" + str(path) + "?mpp=0.5\" (µm per pixel), or "
                "spot_diameter_um=55 for Visium spots drawn as circles")
        if the_mpp > COARSE_MPP:
            logger.warning("%s: image %s is %.2f µm/px; patches cut from it hold little "
                           "detail: add the full-resolution H&E to the store", path, img_name,
                           the_mpp)
        NGFFSlide(img_path, mpp=the_mpp)  # an H&E image? (8-bit RGB); fails with its reason
        obs = tbl.obs.iloc[rows]
        pcol = next((c for c in ("patient_id", "patient") if c in obs), None)
        pid = str(obs[pcol].iloc[0]) if pcol else patient
        arr = {c: (obs[c].to_numpy() if c in obs else np.full(len(rows), -1, np.int64))
               for c in (K.ARRAY_ROW, K.ARRAY_COL)}
        in_tissue = obs[K.IN_TISSUE].to_numpy().astype(bool) if K.IN_TISSUE in obs else \
            np.ones(len(rows), bool)
        sec = section if (section and len(regions) == 1) else str(ours.get("section", region))
        meta: dict[str, Any] = {
            "platform": "spatialdata", "source": str(path), "image_path": str(img_path),
            "mpp": the_mpp, "mpp_source": mpp_source, "coordinate_system": cs,
            "table": tname, "region": str(region)}
        out.append(build_section(
            counts_all[rows], spot_ids=[str(i) for i in inst], genes=genes, x=xy[:, 0],
            y=xy[:, 1], array_row=arr[K.ARRAY_ROW], array_col=arr[K.ARRAY_COL],
            in_tissue=in_tissue, section=sec, patient=pid, meta=meta))
    return concat_sections(out)


SPATIAL_READERS.register("spatialdata", read_spatialdata)
