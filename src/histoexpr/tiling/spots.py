"""Spot-centred patches of spatial-transcriptomics sections (seed 003: 112 µm around each
spot, 224 px), read from each section's H&E image.

A cohort AnnData (from :mod:`histoexpr.expression`) holds spot centres in ``obs["x"]``,
``obs["y"]`` (full-resolution pixels) and, per section, ``uns["sections"][s]["image_path"]``
and ``["mpp"]``. These functions turn that into level-0 tile corners and pixels; spots near
the image border get white padding, as OpenSlide renders areas outside a slide.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
from anndata import AnnData

from .. import _keys as K
from ..errors import InputError
from .filters import white_fraction
from .samplers import spot_coords
from .spec import TileSpec

logger = logging.getLogger(__name__)

__all__ = ["iter_section_patches", "open_section", "section_coords", "spot_white_fraction"]


def open_section(adata: AnnData, section: str) -> Any:
    """Open the H&E image of ``section`` as a :class:`~histoexpr.slide.Slide`.

    Raises
    ------
    InputError
        The section has no image recorded, or the image is gone.
    """
    from ..slide import open_slide

    info = adata.uns.get(K.UNS_SECTIONS, {}).get(section)
    if info is None:
        raise InputError(f"section {section!r} has no entry in uns['sections']; read it with a "
                         "histoexpr reader")
    path = info.get("image_path")
    if not path:
        raise InputError(
            f"section {section!r} ({info.get('source', '?')}) has no H&E image; give the image "
            "when reading it (e.g. image=... / an images/<section>.jpg next to the counts)"
        )
    return open_slide(path, mpp=float(info["mpp"]))


def section_coords(adata: AnnData, section: str, spec: TileSpec, *, slide: Any = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``adata`` in ``section`` and the level-0 corners of their patches.

    Returns
    -------
    rows : ndarray of int
        Positions in ``adata`` (in order).
    coords : ndarray of shape (n, 2)
        Top-left corners of ``spec``-sized squares centred on the spots.
    """
    rows = np.flatnonzero(adata.obs[K.SLIDE_ID].astype(str).to_numpy() == section)
    if slide is None:
        slide = open_section(adata, section)
    centres = adata.obs[[K.X, K.Y]].to_numpy(np.float64)[rows]
    coords = spot_coords(centres, spec, slide_mpp=slide.mpp, dimensions=slide.dimensions,
                         source=str(slide.path), ids=adata.obs_names[rows].to_numpy())
    return rows, coords


def iter_section_patches(adata: AnnData, spec: TileSpec, *, workers: int | None = None
                         ) -> Iterator[tuple[str, np.ndarray, np.ndarray, Any]]:
    """Yield ``(section, rows, patches, slide)`` for each section; ``patches`` is
    ``(n, size_px, size_px, 3)`` uint8 at ``spec.mpp``. One section in memory at a time."""
    for section in adata.obs[K.SLIDE_ID].astype(str).unique():
        slide = open_section(adata, section)
        rows, coords = section_coords(adata, section, spec, slide=slide)
        yield section, rows, slide.read_at_mpp_batch(coords, spec.size_px, spec.mpp,
                                                     workers=workers), slide


def spot_white_fraction(adata: AnnData, spec: TileSpec) -> np.ndarray:
    """Fraction of near-white pixels in each spot's patch (``(n_obs,)`` float).

    Read at 4x the spec's pixel size: whiteness needs no detail, and this reads a quarter
    as many pixels.
    """
    coarse = TileSpec(max(8, spec.size_px // 4), spec.size_um / max(8, spec.size_px // 4))
    out = np.empty(adata.n_obs, np.float32)
    for _, rows, patches, _ in iter_section_patches(adata, coarse):
        out[rows] = white_fraction(patches)
    return out
