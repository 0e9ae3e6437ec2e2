"""The ST-Net / BrST-Net breast dataset (He et al. 2020; seed 003's data): 68 legacy-ST
sections of 23 patients, in the layout ST-Net's preparation reads::

    ROOT/<subtype>/<patient>/<patient>_<section>.jpg          (or .tif) the H&E
    ROOT/<subtype>/<patient>/<patient>_<section>.tsv.gz       counts: spots x genes, the spot
                                                              id "<x>x<y>" first, genes by
                                                              Ensembl id
    ROOT/<subtype>/<patient>/<patient>_<section>.spots.txt    x, y, pixel_x, pixel_y per spot
    ROOT/<subtype>/<patient>/<patient>_<section>_Coords.tsv   (optional) tumour labels

Each section is read with :func:`~histoexpr.expression.st.read_legacy_st`; ``obs`` gets the
patient, the subtype (the folder above the patient) and, where the ``_Coords.tsv`` file
labels the spot, ``tumor``. Gene ids become symbols with a gene-name table (a GTF or an
id,symbol table, :func:`~histoexpr.expression.genenames.read_gene_names`); without one the
Ensembl ids are kept (``top250`` works; named panels need symbols).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import InputError
from .section import SPATIAL_READERS, concat_sections
from .st import read_legacy_st

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["read_stnet", "stnet_sections"]

logger = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".jpg", ".tif", ".tiff", ".jpeg", ".png")


def stnet_sections(root: str | Path) -> list[dict]:
    """One spec per section found in the layout (see the module docstring)."""
    root = Path(root)
    out = []
    for counts in sorted(root.glob("*/*/*_*.tsv.gz")):
        stem = counts.name.removesuffix(".tsv.gz")
        patient = counts.parent.name
        if not stem.startswith(patient + "_"):
            continue
        spots = counts.with_name(stem + ".spots.txt")
        image = next((counts.with_name(stem + s) for s in _IMAGE_SUFFIXES
                      if counts.with_name(stem + s).is_file()), None)
        if not spots.is_file():
            logger.warning("%s: no %s; section skipped", counts, spots.name)
            continue
        coords = counts.with_name(stem + "_Coords.tsv")
        out.append({"platform": "stnet", "counts": str(counts), "spots": str(spots),
                    "image": None if image is None else str(image), "section": stem,
                    "patient": patient, "subtype": counts.parent.parent.name,
                    "tumor": str(coords) if coords.is_file() else None})
    return out


def _tumour_labels(path: Path, spot_ids: pd.Index) -> np.ndarray:
    """Per spot: 1.0 tumour, 0.0 not, NaN unlabelled (columns 2-3 the array x, y, column 5
    the label, as ST-Net reads them)."""
    tab = pd.read_csv(path, sep="\t")
    if tab.shape[1] < 5:
        raise InputError(f"{path}: expected the tumour coordinates table (x, y in columns 2 "
                         f"and 3, the label in column 5), got {tab.shape[1]} columns")
    xs, ys = (np.rint(tab.iloc[:, i].astype(float)).astype(int) for i in (1, 2))
    keys = [f"{a}x{b}" for a, b in zip(xs, ys)]
    lab = pd.Series((tab.iloc[:, 4].astype(str).str.lower() == "tumor").astype(float).values,
                    index=keys)
    lab = lab[~lab.index.duplicated()]
    return lab.reindex(spot_ids).to_numpy(float)


def read_stnet_section(counts: str | Path, spots: str | Path, image: str | Path | None = None,
                       *, section: str | None = None, patient: str | None = None,
                       subtype: str | None = None, tumor: str | Path | None = None,
                       mpp: float | None = None) -> AnnData:
    """One section of the layout (the ``stnet`` reader of a section spec)."""
    adata = read_legacy_st(counts, spots, image, section=section, patient=patient, mpp=mpp)
    if subtype is not None:
        adata.obs["subtype"] = str(subtype)
    if tumor is not None:
        spot_ids = pd.Index([str(i).split(":", 1)[-1] for i in adata.obs_names])
        adata.obs["tumor"] = _tumour_labels(Path(tumor), spot_ids)
    return adata


def read_stnet(root: str | Path, sections: Sequence[str] | None = None, *,
               join: str = "inner") -> AnnData:
    """Read the ST-Net layout under ``root`` into one cohort (``sections``: a subset by
    ``<patient>_<section>`` name).

    Examples
    --------
    >>> cohort = read_stnet("data/hist2tscript", ["BC23903_C1"])  # doctest: +SKIP
    """
    specs = stnet_sections(root)
    if sections is not None:
        specs = [s for s in specs if s["section"] in set(sections)]
    if not specs:
        raise InputError(f"{root}: no ST-Net sections (<subtype>/<patient>/<patient>_<section>"
                         ".tsv.gz with a .spots.txt beside it)")
    return concat_sections([read_stnet_section(**{k: v for k, v in s.items()
                                                  if k != "platform"}) for s in specs],
                           join=join)


SPATIAL_READERS.register("stnet", read_stnet_section)
