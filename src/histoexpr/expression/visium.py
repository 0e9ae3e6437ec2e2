"""10x Visium Space Ranger outputs as one section AnnData (layout: :mod:`.st`).

Reads ``filtered_feature_bc_matrix.h5`` (10x HDF5, read with h5py) or the
``filtered_feature_bc_matrix/`` MatrixMarket folder, ``spatial/tissue_positions.csv``
(or ``tissue_positions_list.csv``) and ``spatial/scalefactors_json.json``. Spot centres are
full-resolution image pixels; the pixel size is 55 µm (the spot diameter) divided by
``spot_diameter_fullres`` unless given.
"""

from __future__ import annotations

import gzip
import json
import logging
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
    join_report,
    unique_genes,
)
from .spots import read_spots

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

__all__ = ["VISIUM_SPOT_DIAMETER_UM", "read_10x_h5", "read_10x_mtx", "read_visium"]

#: Visium spots are 55 µm across (100 µm centre to centre)
VISIUM_SPOT_DIAMETER_UM = 55.0
GENE_EXPRESSION = "Gene Expression"


def _decode(a: np.ndarray) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in a], dtype=object)


def read_10x_h5(path: str | Path) -> tuple[sp.csr_matrix, pd.Index, pd.DataFrame]:
    """Counts (barcodes x features, CSR), barcodes and features (``gene_id``, ``name``,
    ``feature_type``) of a Cell/Space Ranger >= 3 HDF5 matrix; only gene-expression
    features are kept."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if "matrix" not in f:
                raise InputError(
                    f"{path}: no 'matrix' group (found: {', '.join(f.keys())}); only the "
                    "Space Ranger >= 1.0 / Cell Ranger >= 3 HDF5 layout is read"
                )
            g = f["matrix"]
            n_features, n_barcodes = (int(v) for v in g["shape"][()])
            # stored as features x barcodes CSC == barcodes x features CSR
            X = sp.csr_matrix(
                (g["data"][()], g["indices"][()], g["indptr"][()]),
                shape=(n_barcodes, n_features),
            )
            barcodes = _decode(g["barcodes"][()])
            fg = g["features"]
            features = pd.DataFrame({
                "gene_id": _decode(fg["id"][()]),
                "name": _decode(fg["name"][()]),
                "feature_type": (
                    _decode(fg["feature_type"][()]) if "feature_type" in fg
                    else GENE_EXPRESSION
                ),
            })
    except (OSError, KeyError) as e:
        raise InputError(f"{path}: not a readable 10x HDF5 matrix ({e})") from e
    return X, pd.Index(barcodes), features


def read_10x_mtx(folder: str | Path) -> tuple[sp.csr_matrix, pd.Index, pd.DataFrame]:
    """Like :func:`read_10x_h5` for a ``filtered_feature_bc_matrix/`` folder
    (``matrix.mtx[.gz]``, ``barcodes.tsv[.gz]``, ``features.tsv[.gz]`` or ``genes.tsv``)."""
    from scipy.io import mmread

    folder = Path(folder)

    def find(*names: str) -> Path:
        for n in names:
            for p in (folder / n, folder / f"{n}.gz"):
                if p.is_file():
                    return p
        raise InputError(f"{folder}: no {' or '.join(names)} (.gz); is this a 10x matrix folder?")

    mtx, bc, ft = find("matrix.mtx"), find("barcodes.tsv"), find("features.tsv", "genes.tsv")
    try:
        with (gzip.open(mtx) if mtx.suffix == ".gz" else open(mtx, "rb")) as fh:
            X = sp.csr_matrix(mmread(fh).T)
        barcodes = pd.read_csv(bc, sep="\t", header=None, dtype=str)[0]
        feat = pd.read_csv(ft, sep="\t", header=None, dtype=str)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{folder}: cannot read the 10x matrix ({e})") from e
    features = pd.DataFrame({
        "gene_id": feat[0].to_numpy(),
        "name": feat[1].to_numpy() if feat.shape[1] > 1 else feat[0].to_numpy(),
        "feature_type": feat[2].to_numpy() if feat.shape[1] > 2 else GENE_EXPRESSION,
    })
    if X.shape != (len(barcodes), len(features)):
        raise InputError(
            f"{mtx}: matrix is {X.shape[1]} x {X.shape[0]} (features x barcodes) but there are "
            f"{len(features)} features and {len(barcodes)} barcodes"
        )
    return X, pd.Index(barcodes), features


def _find_outs(folder: Path) -> Path:
    if not folder.is_dir():
        raise InputError(f"{folder}: Space Ranger output folder not found; check the path")
    if not (folder / "spatial").is_dir() and (folder / "outs" / "spatial").is_dir():
        return folder / "outs"
    return folder


def read_visium(
    folder: str | Path,
    *,
    image: str | Path | None = None,
    section: str | None = None,
    patient: str | None = None,
    mpp: float | None = None,
) -> AnnData:
    """Read one Visium section from a Space Ranger ``outs`` folder.

    Parameters
    ----------
    folder
        The ``outs`` folder (or the run folder holding it): a filtered matrix
        (``filtered_feature_bc_matrix.h5`` preferred, else the MatrixMarket folder) and
        ``spatial/`` with the tissue positions and ``scalefactors_json.json``.
    image
        The full-resolution H&E image given to Space Ranger; spots are checked to lie inside
        it. Without it, the hires/lowres image paths and scale factors are stored in
        ``uns["sections"][section]`` so maps can be drawn on them.
    section
        Section id (default: the run folder's name).
    patient
        Patient id (default: the section id).
    mpp
        Full-resolution µm per pixel; default ``55 / spot_diameter_fullres``.

    Raises
    ------
    InputError
        Missing files, NaN/negative counts, barcodes that do not join the positions.
    CoordinateError
        Spot centres outside ``image``.

    Examples
    --------
    >>> adata = read_visium("run1/outs", image="run1.tif", patient="P1")  # doctest: +SKIP
    """
    outs = _find_outs(Path(folder))
    section = section or (outs.parent.name if outs.name == "outs" else outs.name)
    h5 = outs / "filtered_feature_bc_matrix.h5"
    mtx = outs / "filtered_feature_bc_matrix"
    if h5.is_file():
        X, barcodes, features = read_10x_h5(h5)
        source = h5
    elif mtx.is_dir():
        X, barcodes, features = read_10x_mtx(mtx)
        source = mtx
    else:
        raise InputError(
            f"{outs}: no filtered_feature_bc_matrix.h5 or filtered_feature_bc_matrix/ folder"
        )
    is_gex = (features["feature_type"] == GENE_EXPRESSION).to_numpy()
    if not is_gex.all():
        logger.info("%s: %d non-gene-expression features dropped", source, int((~is_gex).sum()))
        X, features = X[:, is_gex], features[is_gex].reset_index(drop=True)
    check_counts(X.data, source)

    spatial = outs / "spatial"
    pos = next(
        (p for p in (spatial / "tissue_positions.csv", spatial / "tissue_positions_list.csv")
         if p.is_file()), None,
    )
    if pos is None:
        raise InputError(f"{spatial}: no tissue_positions.csv or tissue_positions_list.csv")
    table = read_spots(pos, only_in_tissue=False).set_index(K.SPOT_ID)
    matched = barcodes.isin(table.index)
    join_report(
        int(matched.sum()), len(barcodes), len(table), left=source, right=pos,
        left_ids=list(barcodes), right_ids=list(table.index), what="barcodes",
        has="have a position",
    )
    if not matched.all():
        X, barcodes = X[matched], barcodes[matched]
    table = table.loc[barcodes]
    x, y = table[K.X].to_numpy(float), table[K.Y].to_numpy(float)

    sf_path = spatial / "scalefactors_json.json"
    scalefactors: dict[str, float] = {}
    if sf_path.is_file():
        try:
            scalefactors = {k: float(v) for k, v in json.loads(sf_path.read_text()).items()}
        except (OSError, ValueError, TypeError) as e:
            raise InputError(f"{sf_path}: not a scale-factor JSON ({e})") from e
    mpp_source = "given"
    if mpp is None:
        d = scalefactors.get("spot_diameter_fullres")
        if not d:
            raise InputError(
                f"{sf_path}: no spot_diameter_fullres to derive the pixel size from; pass mpp="
            )
        mpp = VISIUM_SPOT_DIAMETER_UM / d
        mpp_source = f"{VISIUM_SPOT_DIAMETER_UM:g} µm / spot_diameter_fullres"
        logger.info("%s: %.4f µm/px at full resolution (%s)", section, mpp, mpp_source)
    meta: dict[str, Any] = {
        "platform": "visium",
        "source": str(outs),
        "image_path": None if image is None else str(image),
        "mpp": float(mpp),
        "mpp_source": mpp_source,
        "scalefactors": scalefactors,
    }
    for res in ("hires", "lowres"):
        p = spatial / f"tissue_{res}_image.png"
        if p.is_file():
            meta[f"{res}_image_path"] = str(p)
    if image is not None:
        meta["image_size"] = list(check_spots_in_image(x, y, image, source=pos))
    var = pd.DataFrame({"gene_id": features["gene_id"].to_numpy()})
    return build_section(
        X, spot_ids=list(barcodes), genes=unique_genes(features["name"], source),
        x=x, y=y, array_row=table["array_y"].to_numpy(), array_col=table["array_x"].to_numpy(),
        in_tissue=table[K.IN_TISSUE].to_numpy(), section=section, patient=patient,
        meta=meta, var=var,
    )


SPATIAL_READERS.register("visium", read_visium)
