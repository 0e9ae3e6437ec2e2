"""HEST-style ``.h5ad`` sections (and AnnData files histoexpr wrote) into the data contract.

HEST stores one section per ``st/<id>.h5ad`` with ``metadata/<id>.json`` (pixel size) and
``wsis/<id>.tif`` beside it; obs carry ``pxl_col_in_fullres``/``pxl_row_in_fullres`` and
``array_row``/``array_col``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _keys as K
from ..errors import InputError
from .section import (
    SPATIAL_READERS,
    build_section,
    check_counts,
    check_spots_in_image,
    section_name,
    unique_genes,
)

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

__all__ = ["read_h5ad"]


def _hest_metadata(path: Path) -> dict[str, Any]:
    """HEST download layout: ``st/<id>.h5ad`` beside ``metadata/<id>.json`` and
    ``wsis/<id>.tif``; returns what can be found (pixel size, image path)."""
    out: dict[str, Any] = {}
    sid = section_name(path)
    for meta in (path.with_suffix(".json"), path.parent.parent / "metadata" / f"{sid}.json"):
        if meta.is_file():
            try:
                d = json.loads(meta.read_text())
            except (OSError, ValueError):
                continue
            for k in ("pixel_size_um_estimated", "pixel_size_um_embedded", "mpp"):
                if isinstance(d.get(k), (int, float)) and d[k] > 0:
                    out["mpp"], out["mpp_source"] = float(d[k]), f"{meta.name}:{k}"
                    break
            if "st_technology" in d:
                out["platform"] = str(d["st_technology"])
            break
    for wsi in (path.parent.parent / "wsis" / f"{sid}.tif",):
        if wsi.is_file():
            out["image_path"] = str(wsi)
    return out


def read_h5ad(
    path: str | Path,
    *,
    section: str | None = None,
    patient: str | None = None,
    mpp: float | None = None,
    image: str | Path | None = None,
) -> AnnData:
    """Read spots from an ``.h5ad``: the HEST layout, or a file this package wrote.

    HEST: ``obs`` has ``pxl_col_in_fullres`` (x) and ``pxl_row_in_fullres`` (y) (or
    ``obsm["spatial"]``), ``array_row``/``array_col`` and maybe ``in_tissue``; ``X`` holds
    raw counts (``layers["counts"]`` wins when present); ``uns["spatial"]`` (scanpy style)
    is kept in ``uns["sections"][section]["scalefactors"]``. The pixel size comes from
    ``mpp``, else from a HEST ``metadata/<id>.json`` beside the ``st/`` folder, else is
    left unknown (``None``).

    A file written by this package (``obs`` with ``x``, ``y``, ``slide_id`` and
    ``uns["sections"]``) is returned as stored; ``section``/``patient`` then rename a
    single-section file.

    Raises
    ------
    InputError
        Missing file, missing coordinate columns (named), NaN/negative counts.

    Examples
    --------
    >>> adata = read_h5ad("hest/st/TENX95.h5ad", patient="P1")  # doctest: +SKIP
    """
    import anndata as ad

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: h5ad file not found; check the path")
    try:
        src = ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{path}: cannot read as h5ad ({e})") from e
    if {K.X, K.Y, K.SLIDE_ID} <= set(src.obs.columns) and K.UNS_SECTIONS in src.uns:
        return _own_layout(src, path, section=section, patient=patient, mpp=mpp, image=image)

    obs = src.obs
    if {"pxl_col_in_fullres", "pxl_row_in_fullres"} <= set(obs.columns):
        x = obs["pxl_col_in_fullres"].to_numpy(float)
        y = obs["pxl_row_in_fullres"].to_numpy(float)
    elif "spatial" in src.obsm:
        xy = np.asarray(src.obsm["spatial"], dtype=float)
        x, y = xy[:, 0], xy[:, 1]
    else:
        missing = sorted({"pxl_col_in_fullres", "pxl_row_in_fullres"} - set(obs.columns))
        raise InputError(
            f"{path}: no spot coordinates: obs lacks {', '.join(missing)} and there is no "
            f"obsm['spatial'] (obs columns: {', '.join(map(str, obs.columns[:10])) or 'none'})"
        )
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError(f"{path}: some spot coordinates are NaN")
    arr = {}
    for c in (K.ARRAY_ROW, K.ARRAY_COL):
        if c in obs.columns:
            arr[c] = obs[c].to_numpy()
        else:
            logger.info("%s: obs has no %s; filled with -1", path, c)
            arr[c] = np.full(len(obs), -1, dtype=np.int64)
    in_tissue = obs[K.IN_TISSUE].to_numpy().astype(bool) if K.IN_TISSUE in obs else True
    counts = src.layers[K.LAYER_COUNTS] if K.LAYER_COUNTS in src.layers else src.X
    counts = sp.csr_matrix(counts)
    check_counts(counts.data, path)

    section = section or section_name(path)
    hest = _hest_metadata(path)
    meta: dict[str, Any] = {
        "platform": hest.get("platform", "h5ad"),
        "source": str(path),
        "image_path": str(image) if image is not None else hest.get("image_path"),
        "mpp": float(mpp) if mpp is not None else hest.get("mpp"),
        "mpp_source": "given" if mpp is not None else hest.get("mpp_source"),
    }
    if meta["mpp"] is None:
        logger.warning("%s: pixel size unknown; pass mpp= to read_h5ad", path)
    spatial = src.uns.get("spatial")
    if isinstance(spatial, Mapping) and spatial:
        lib = next(iter(spatial.values()))
        if isinstance(lib, Mapping) and isinstance(lib.get("scalefactors"), Mapping):
            meta["scalefactors"] = {k: float(v) for k, v in lib["scalefactors"].items()}
    if image is not None:
        meta["image_size"] = list(check_spots_in_image(x, y, image, source=path))
    var = src.var.copy()
    for c in ("gene_ids", "gene_id"):
        if c in var.columns:
            var = var.rename(columns={c: "gene_id"})[["gene_id"]]
            break
    else:
        var = None
    return build_section(
        counts, spot_ids=list(obs.index.astype(str)), genes=unique_genes(src.var_names, path),
        x=x, y=y, array_row=arr[K.ARRAY_ROW], array_col=arr[K.ARRAY_COL],
        in_tissue=np.broadcast_to(in_tissue, (len(obs),)), section=section, patient=patient,
        meta=meta, var=var,
    )


def _own_layout(
    adata: AnnData, path: Path, *, section: str | None, patient: str | None,
    mpp: float | None, image: str | Path | None,
) -> AnnData:
    """Validate (and optionally relabel) an h5ad this package wrote."""
    check_counts(
        sp.csr_matrix(adata.layers.get(K.LAYER_COUNTS, adata.X)).data, path
    )
    sections = list(adata.obs[K.SLIDE_ID].astype(str).unique())
    overrides = {"section": section, "patient": patient, "mpp": mpp, "image": image}
    if len(sections) != 1:
        if any(v is not None for v in overrides.values()):
            raise InputError(
                f"{path}: holds {len(sections)} sections; section/patient/mpp/image can only "
                "be set for a single-section file"
            )
        return adata
    old = sections[0]
    info = dict(adata.uns[K.UNS_SECTIONS].get(old, {}))
    if mpp is not None:
        info["mpp"], info["mpp_source"] = float(mpp), "given"
    if image is not None:
        x, y = adata.obs[K.X].to_numpy(float), adata.obs[K.Y].to_numpy(float)
        info["image_size"] = list(check_spots_in_image(x, y, image, source=path))
        info["image_path"] = str(image)
    new = section or old
    n = adata.n_obs
    adata.obs[K.SLIDE_ID] = pd.Categorical([new] * n)
    if patient is not None:
        adata.obs[K.PATIENT_ID] = pd.Categorical([patient] * n)
    if new != old:
        adata.obs_names = [f"{new}:{s}" for s in adata.obs[K.SPOT_ID].astype(str)]
    adata.uns[K.UNS_SECTIONS] = {new: info}
    return adata


# ----------------------------------------------------------------------------- cohorts


SPATIAL_READERS.register("h5ad", read_h5ad)
