"""Legacy spatial-transcriptomics sections (as in her2st): a spots x genes counts table and
the spot-detector selection table, read into the section AnnData of
:mod:`~histoexpr.expression.section`.

:func:`read_legacy_st` reads one section (registered as the ``legacy_st`` reader);
:func:`read_her2st` reads the her2st folder layout into one cohort.
"""

from __future__ import annotations

import gzip
import io
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _keys as K
from ..errors import InputError
from .section import (
    MIN_MATCH_FRACTION,
    SPATIAL_READERS,
    build_section,
    check_counts,
    check_spots_in_image,
    concat_sections,
    join_report,
    section_name,
    unique_genes,
)
from .spots import estimate_mpp_from_spots, read_spots

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

__all__ = ["read_her2st", "read_legacy_st"]

_SPOT_ID_RE = re.compile(r"^(-?\d+)x(-?\d+)$")


def _read_counts_tsv(path: Path) -> tuple[pd.Index, pd.Index, np.ndarray]:
    """Spot ids, gene names and dense counts of a legacy-ST counts table (spots x genes)."""
    if not path.is_file():
        raise InputError(f"{path}: counts file not found; check the path")
    opener = gzip.open if path.name.endswith(".gz") else open
    ids: list[str] = []
    rows: list[str] = []
    try:
        with opener(path, "rt") as f:
            header = f.readline().rstrip("\r\n").split("\t")
            for line in f:
                sid, _, rest = line.partition("\t")
                if sid.strip():
                    ids.append(sid.strip().strip('"'))
                    rows.append(rest)
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the counts table ({e})") from e
    if not rows or not rows[0].strip():
        raise InputError(f"{path}: the counts table has no spots or no genes")
    try:
        # parsing the numbers alone (float64, no id column) is ~30 % faster than letting
        # pandas infer 15,000 column types
        values = pd.read_csv(
            io.StringIO("".join(rows)), sep="\t", header=None, dtype=np.float64,
            low_memory=False,
        ).to_numpy()
    except pd.errors.ParserError as e:
        raise InputError(f"{path}: cannot read the counts table ({e})") from e
    except ValueError as e:  # a text cell among the numbers
        raise InputError(f"{path}: a count is not a number ({e})") from e
    if len(header) == values.shape[1] + 1:
        genes = header[1:]
    elif len(header) == values.shape[1]:  # R write.table: no field above the row names
        genes = header
    else:
        raise InputError(
            f"{path}: the header has {len(header)} fields but rows have "
            f"{values.shape[1] + 1}; expected a tab-separated spots x genes table with the "
            "spot id first"
        )
    return pd.Index(ids), pd.Index([g.strip('"') for g in genes]), values


def _array_from_ids(ids: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """(array_row, array_col) from legacy-ST ids ``"<x>x<y>"``: x is the column, y the row."""
    rows, cols = [], []
    for s in ids:
        m = _SPOT_ID_RE.match(s)
        rows.append(int(m.group(2)) if m else -1)
        cols.append(int(m.group(1)) if m else -1)
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)


def read_legacy_st(
    counts: str | Path,
    spots: str | Path,
    image: str | Path | None = None,
    *,
    section: str | None = None,
    patient: str | None = None,
    mpp: float | None = None,
) -> AnnData:
    """Read one legacy-ST section (as in her2st): a counts table and a spot selection table.

    Parameters
    ----------
    counts
        Tab-separated spots x genes raw counts (``.tsv`` or ``.tsv.gz``); the first column is
        the spot id ``"<x>x<y>"`` (array coordinates), the header row the gene symbols.
    spots
        The spot-detector selection table (``x y new_x new_y pixel_x pixel_y selected``);
        spots with ``selected == 1`` are kept and joined inner on ``"<x>x<y>"``.
    image
        The H&E image of the section; its size is checked against the spot coordinates
        (header only) and its path stored in ``uns["sections"]``.
    section
        Section id (default: the counts file name without extensions).
    patient
        Patient id (default: the section id).
    mpp
        Image µm per pixel; by default derived from the 200 µm spot pitch.

    Raises
    ------
    InputError
        Unreadable files, NaN/negative counts, or counts and spots that do not join (fewer
        than half of the selected spots have counts).
    CoordinateError
        Spot centres outside the image.

    Examples
    --------
    >>> adata = read_legacy_st("counts/C3.tsv.gz", "spots/C3_selection.tsv",
    ...                        "images/C3.jpg", patient="C")  # doctest: +SKIP
    >>> adata.uns["sections"]["C3"]["mpp"]  # doctest: +SKIP
    0.687
    """
    counts, spots = Path(counts), Path(spots)
    section = section or section_name(counts)
    ids, genes, values = _read_counts_tsv(counts)
    check_counts(values, counts)
    table = read_spots(spots, only_in_tissue=True)
    sel_ids = pd.Index(table[K.SPOT_ID])
    if sel_ids.has_duplicates:
        raise InputError(f"{spots}: {int(sel_ids.duplicated().sum())} duplicate spot id(s)")
    matched = ids.isin(sel_ids)
    if not matched.any() and pd.Index(genes).isin(sel_ids).mean() >= MIN_MATCH_FRACTION:
        raise InputError(
            f"{counts}: the spot ids are in the header row: the table is genes x spots; "
            "transpose it to spots x genes"
        )
    if ids.has_duplicates:
        raise InputError(f"{counts}: {int(ids.duplicated().sum())} duplicate spot id(s)")
    join_report(
        int(matched.sum()), len(sel_ids), len(ids), left=spots, right=counts,
        left_ids=list(sel_ids), right_ids=list(ids), what="selected spots",
        has="have a counts row",
    )
    if matched.sum() < len(ids):
        logger.info(
            "%s: %d counts row(s) without a selected spot dropped", counts,
            len(ids) - int(matched.sum()),
        )
    keep_ids = ids[matched]
    table = table.set_index(K.SPOT_ID).loc[keep_ids]
    rows, cols = _array_from_ids(keep_ids)
    x, y = table[K.X].to_numpy(float), table[K.Y].to_numpy(float)

    mpp_source = "given"
    if mpp is None:
        mpp = estimate_mpp_from_spots(table)
        mpp_source = "spot grid (200 µm pitch)"
        logger.info("%s: %.4f µm/px from the spot grid", section, mpp)
    meta: dict[str, Any] = {
        "platform": "legacy_st",
        "source": str(counts),
        "spots_path": str(spots),
        "image_path": None if image is None else str(image),
        "mpp": float(mpp),
        "mpp_source": mpp_source,
    }
    if image is not None:
        meta["image_size"] = list(check_spots_in_image(x, y, image, source=spots))
    return build_section(
        values[matched], spot_ids=list(keep_ids), genes=unique_genes(genes, counts),
        x=x, y=y, array_row=rows, array_col=cols, in_tissue=np.ones(len(keep_ids), bool),
        section=section, patient=patient, meta=meta,
    )


def read_her2st(
    folder: str | Path,
    sections: Sequence[str] | None = None,
    *,
    patient: str | None = None,
    join: str = "inner",
) -> AnnData:
    """Read sections of the her2st layout into one cohort.

    ``<folder>/counts/<s>.tsv.gz``, ``<folder>/spots/<s>_selection.tsv`` and (when present)
    ``<folder>/images/<s>.jpg`` for each section ``s``.

    Parameters
    ----------
    folder
        The her2st data folder.
    sections
        Section ids (default: every ``counts/*.tsv.gz``).
    patient
        One patient id for all sections; by default the letters that start each section id
        (her2st names sections ``<patient><number>``: ``C2`` is patient ``C``).
    join
        Gene join across sections (``"inner"`` or ``"outer"``), see :func:`concat_sections`.

    Examples
    --------
    >>> cohort = read_her2st("../shared/data/her2st", ["C2", "C3"])  # doctest: +SKIP
    >>> cohort.obs["slide_id"].value_counts().to_dict()  # doctest: +SKIP
    {'C2': 187, 'C3': 180}
    """
    folder = Path(folder)
    if sections is None:
        sections = sorted(section_name(p) for p in (folder / "counts").glob("*.tsv.gz"))
        if not sections:
            raise InputError(f"{folder}/counts: no <section>.tsv.gz files; is this her2st?")
    adatas = []
    for s in sections:
        img = folder / "images" / f"{s}.jpg"
        pid = patient
        if pid is None:
            m = re.match(r"[A-Za-z]+", s)
            pid = m.group(0) if m else s
        adatas.append(read_legacy_st(
            folder / "counts" / f"{s}.tsv.gz", folder / "spots" / f"{s}_selection.tsv",
            img if img.is_file() else None, section=s, patient=pid,
        ))
    return concat_sections(adatas, join=join)


SPATIAL_READERS.register("legacy_st", read_legacy_st)
