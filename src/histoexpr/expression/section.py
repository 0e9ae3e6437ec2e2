"""One spatial-transcriptomics section as one AnnData (spots x genes), the helpers every
section reader shares, the reader registry, and cohorts of sections.

Every reader returns the same layout (names from :mod:`histoexpr._keys`):

- ``X`` and ``layers["counts"]``: raw counts, float32 CSR;
- ``obs``: ``spot_id``, ``x``, ``y`` (spot centre in full-resolution image pixels),
  ``array_row``, ``array_col``, ``in_tissue``, ``slide_id`` (the section id), ``patient_id``,
  ``total_counts``; ``obs_names`` are ``"<section>:<spot>"`` so sections concatenate cleanly;
- ``var_names``: gene symbols, made unique (``SYMBOL-1``, ... ; logged);
- ``uns["sections"][section]``: ``image_path``, ``mpp``, ``mpp_source``, ``platform``,
  ``source`` and platform extras (Visium scale factors and low/high-res image paths).

Readers (each registers itself in :data:`SPATIAL_READERS`):
:func:`~histoexpr.expression.st.read_legacy_st` (counts TSV + spot-detector selection table,
as in her2st), :func:`~histoexpr.expression.visium.read_visium` (Space Ranger ``outs``),
:func:`~histoexpr.expression.h5ad.read_h5ad` (HEST layout, or a file this package wrote).
:func:`build_section` makes the common AnnData; :func:`concat_sections` joins sections into
one cohort; :func:`prefix_ids` renames a dataset's sections so two datasets join cleanly.
:func:`~histoexpr.expression.discover.read_sections` reads and joins a list of specs.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _keys as K
from ..errors import CoordinateError, InputError
from ..registry import Registry

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

__all__ = [
    "MIN_MATCH_FRACTION",
    "SPATIAL_READERS",
    "build_section",
    "check_counts",
    "check_spots_in_image",
    "concat_sections",
    "image_size",
    "join_report",
    "prefix_ids",
    "section_name",
    "unique_genes",
]

#: below this fraction of spots joined to counts, the two files are taken not to belong together
MIN_MATCH_FRACTION = 0.5

#: readers by platform name (each reader module registers its own), used by
#: :func:`~histoexpr.expression.discover.read_sections`
SPATIAL_READERS: Registry = Registry("spatial reader")


# ----------------------------------------------------------------------------- one section


def check_counts(values: np.ndarray, source: str | Path) -> None:
    """Raise :class:`InputError` if ``values`` (a dense array or the ``data`` of a sparse
    matrix) holds NaN/inf or negative numbers; the message names ``source`` and the counts."""
    values = np.asarray(values)
    n_nan = int(np.count_nonzero(~np.isfinite(values)))
    n_neg = int(np.count_nonzero(values < 0))
    if n_nan or n_neg:
        parts = [f"{n_nan} NaN/infinite"] if n_nan else []
        parts += [f"{n_neg} negative"] if n_neg else []
        raise InputError(
            f"{source}: {' and '.join(parts)} count value(s); expected raw counts "
            "(non-negative numbers); fix or re-export the counts"
        )
    if values.size and not np.array_equal(values, np.round(values)):
        logger.warning("%s: counts are not all integers; is this raw UMI counts?", source)


def unique_genes(names: Iterable[str], source: str | Path) -> pd.Index:
    """Gene names made unique the anndata way (``SYMBOL``, ``SYMBOL-1``, ...), logged."""
    from anndata.utils import make_index_unique

    idx = pd.Index([str(n) for n in names])
    n_dup = int(idx.duplicated().sum())
    if n_dup:
        logger.info("%s: %d duplicate gene name(s) made unique (SYMBOL-1, ...)", source, n_dup)
        idx = make_index_unique(idx)
    return idx


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image or slide from its header; the pixels are not decoded.
    A missing, cut or unreadable file is an :class:`InputError` naming it."""
    from ..errors import SlideError
    from ..slide import image_dimensions

    try:
        return image_dimensions(path)
    except SlideError as e:
        raise InputError(str(e)) from e


def check_spots_in_image(
    x: np.ndarray, y: np.ndarray, image: str | Path, *, source: str | Path
) -> tuple[int, int]:
    """Raise :class:`CoordinateError` if a spot centre falls outside ``image``; returns its
    (width, height)."""
    w, h = image_size(image)
    neg = (x < 0) | (y < 0)
    if neg.any():
        i = int(np.flatnonzero(neg)[0])
        raise CoordinateError(
            f"{source}: {int(neg.sum())} of {len(x)} spot(s) have negative pixel coordinates "
            f"(e.g. x={x[i]:.0f}, y={y[i]:.0f}); spot centres are pixels of {image} counted "
            "from its top-left corner: fix or drop those rows")
    outside = (x >= w) | (y >= h)
    if outside.any():
        raise CoordinateError(
            f"{image}: image is {w} x {h} px but {int(outside.sum())} of {len(x)} spot(s) in "
            f"{source} lie outside it (spot centres reach x={x.max():.0f}, y={y.max():.0f}); "
            "is this the full-resolution image of the section, or a downscaled copy?"
        )
    return w, h


def join_report(
    n_matched: int, n_left: int, n_right: int, *, left: Any, right: Any,
    left_ids: Sequence[str], right_ids: Sequence[str], what: str, has: str,
) -> None:
    """Log how many of the ``n_left`` ``what`` in ``left`` joined a row of ``right``; raise
    :class:`InputError` when none did or fewer than :data:`MIN_MATCH_FRACTION` did.

    The message reads "<n_matched> of <n_left> <what> in <left> <has> in <right>" and, on
    error, shows what the ids look like on each side.
    """
    msg = f"{n_matched} of {n_left} {what} in {left} {has} in {right} ({n_right} rows there)"
    if n_matched == 0 or n_matched < MIN_MATCH_FRACTION * n_left:
        raise InputError(
            f"{msg}: the files do not belong together. Ids look like {list(left_ids[:3])} in "
            f"{left} and {list(right_ids[:3])} in {right}; check that both come from the "
            "same section"
        )
    if n_matched < n_left:
        logger.info("%s; kept the %d that join", msg, n_matched)
    else:
        logger.debug(msg)


def build_section(
    counts: sp.spmatrix | np.ndarray,
    *,
    spot_ids: Sequence[str],
    genes: pd.Index,
    x: np.ndarray,
    y: np.ndarray,
    array_row: np.ndarray,
    array_col: np.ndarray,
    in_tissue: np.ndarray,
    section: str,
    patient: str | None,
    meta: Mapping[str, Any],
    var: pd.DataFrame | None = None,
) -> AnnData:
    """The common AnnData of one section (see the module docstring)."""
    import anndata as ad

    X = sp.csr_matrix(counts, dtype=np.float32)
    X.sum_duplicates()
    if patient is None:
        patient = section
        logger.debug("section %s: no patient id given; using the section id", section)
    n = X.shape[0]
    obs = pd.DataFrame(
        {
            K.SPOT_ID: np.asarray(spot_ids, dtype=str),
            K.X: np.asarray(x, dtype=float),
            K.Y: np.asarray(y, dtype=float),
            K.ARRAY_ROW: np.asarray(array_row),
            K.ARRAY_COL: np.asarray(array_col),
            K.IN_TISSUE: np.asarray(in_tissue, dtype=bool),
            K.SLIDE_ID: pd.Categorical([section] * n),
            K.PATIENT_ID: pd.Categorical([patient] * n),
            K.TOTAL_COUNTS: np.asarray(X.sum(axis=1)).ravel(),
        },
        index=pd.Index([f"{section}:{s}" for s in spot_ids]),
    )
    var = pd.DataFrame(index=genes) if var is None else var.set_index(genes)
    info = {"n_spots": int(n), "n_genes": int(X.shape[1]), **meta}
    return ad.AnnData(
        X=X, obs=obs, var=var, layers={K.LAYER_COUNTS: X.copy()},
        uns={K.UNS_SECTIONS: {section: info}},
    )


def section_name(path: Path) -> str:
    """Section id from a file name: ``C2.tsv.gz`` -> ``C2``, ``TENX95.h5ad`` -> ``TENX95``."""
    name = path.name
    for suffix in (".gz", ".tsv", ".txt", ".csv", ".h5ad"):
        name = name.removesuffix(suffix)
    return name

# ----------------------------------------------------------------------------- cohorts


def concat_sections(adatas: Sequence[AnnData], *, join: str = "inner") -> AnnData:
    """Join sections (each from a reader here) into one cohort AnnData.

    Parameters
    ----------
    adatas
        Sections; their section ids (``obs["slide_id"]``) must differ.
    join
        ``"inner"`` keeps the genes every section has (the number dropped is logged);
        ``"outer"`` keeps all genes, with zero counts where a section lacks one.

    Returns
    -------
    AnnData
        Spots of all sections; ``uns["sections"]`` merged; ``var`` columns kept where the
        sections agree.

    Examples
    --------
    >>> cohort = concat_sections([read_legacy_st(...), read_visium(...)])  # doctest: +SKIP
    """
    import anndata as ad

    if join not in ("inner", "outer"):
        raise InputError(f"join must be 'inner' or 'outer', not {join!r}")
    adatas = list(adatas)
    if not adatas:
        raise InputError("no sections to concatenate")
    sections: dict[str, Any] = {}
    for a in adatas:
        for k in (K.SLIDE_ID, K.PATIENT_ID, K.SPOT_ID):
            if k not in a.obs.columns:
                raise InputError(f"a section lacks obs[{k!r}]; read it with a histoexpr reader")
        for s, info in a.uns.get(K.UNS_SECTIONS, {}).items():
            if s in sections:
                raise InputError(
                    f"section {s!r} appears twice: in {_where(sections[s])} and in "
                    f"{_where(info)}; give each its own id: --data NAME=PATH prefixes a "
                    "folder's section and patient ids with NAME_, or set \"section\" in a "
                    "sections.json spec")
            sections[s] = info
    if len(adatas) == 1:
        return adatas[0]
    all_genes = set().union(*(a.var_names for a in adatas))
    shared = set(adatas[0].var_names).intersection(*(a.var_names for a in adatas[1:]))
    if len(shared) < len(all_genes):
        logger.info(
            "%d sections: %d genes in all of them, %d in only some (%s)", len(adatas),
            len(shared), len(all_genes) - len(shared),
            "dropped" if join == "inner" else "kept, zero where missing",
        )
    if join == "inner" and not shared:
        raise InputError("the sections share no gene names; are they the same organism/panel?")
    out = ad.concat(adatas, join=join, merge="same", uns_merge=None)
    if join == "inner" and len(shared) < len(all_genes):
        n_in = Counter(g for a in adatas for g in a.var_names)
        out.uns[K.UNS_REMOVED_GENES] = {
            str(g): f"in only {n_in[g]} of {len(adatas)} sections, which are joined on "
                    "their shared genes (join 'outer' in a --config file keeps it)"
            for g in all_genes - shared}
    if out.obs_names.has_duplicates:
        raise InputError("spot names repeat across sections; give each section its own id")
    for k in (K.SLIDE_ID, K.PATIENT_ID):
        out.obs[k] = pd.Categorical(out.obs[k].astype(str))
    out.uns[K.UNS_SECTIONS] = sections
    return out


def _where(info: Mapping[str, Any]) -> str:
    """The file or folder a section was read from, for messages."""
    src = info.get("source") or info.get("spots_path") or info.get("image_path")
    return str(src) if src else "an unnamed source"


def prefix_ids(adata: AnnData, prefix: str) -> AnnData:
    """``adata`` with its section and patient ids (and spot names) prefixed ``<prefix>_``:
    two datasets whose sections share names (two her2st folders, say) then join cleanly.

    Examples
    --------
    >>> import tempfile
    >>> from histoexpr.datasets.synthetic_st import synthetic_st
    >>> from histoexpr.expression import read_sections
    >>> syn = synthetic_st(tempfile.mkdtemp(), n_sections=1, grid=(2, 2), n_genes=3,
    ...                    n_signal=1)
    >>> a = prefix_ids(read_sections(syn.specs), "rep2")
    >>> a.obs_names[0].startswith("rep2_"), list(a.uns["sections"])[0].startswith("rep2_")
    (True, True)
    """
    out = adata.copy()
    for k in (K.SLIDE_ID, K.PATIENT_ID):
        out.obs[k] = pd.Categorical([f"{prefix}_{v}" for v in out.obs[k].astype(str)])
    out.obs_names = [f"{prefix}_{n}" for n in out.obs_names]
    out.uns[K.UNS_SECTIONS] = {f"{prefix}_{s}": info for s, info in
                               out.uns.get(K.UNS_SECTIONS, {}).items()}
    return out


