"""Tile one slide: tissue → sampler → filters → coordinates + provenance.

:func:`tile_slide` is what ``histoexpr tile`` runs per slide; it returns a
:class:`TileResult` and writes nothing (the caller decides where results go).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _keys as K
from ..errors import InputError, TissueError
from ..slide import Slide
from ..tissue import TissueMask, detect_tissue
from .filters import KMeansPatchFilter, patch_colour_stats, white_fraction
from .samplers import grid_coords, heatmap_coords, spot_coords
from .spec import TileSpec

logger = logging.getLogger(__name__)

__all__ = ["FILTERS", "TileResult", "read_filter_tiles", "tile_slide"]

FILTERS = ("white", "kmeans")
#: filters look at tiles this many pixels across (read from a coarser level: fast)
FILTER_PX = 64
#: tiles the filters read at once (bounds memory: 2,048 x 64 x 64 x 3 = 25 MB, and the
#: statistics pass is chunked too); only per-tile statistics are kept, so memory does not
#: grow with the slide
FILTER_CHUNK = 2048


@dataclass
class TileResult:
    """Coordinates chosen for one slide and how they were chosen."""

    coords: np.ndarray  # (N, 2) int64 level-0 top-left
    spec: TileSpec
    tissue: TissueMask | None
    sampler: str
    n_candidates: int
    removed: dict[str, int] = field(default_factory=dict)
    scores: np.ndarray | None = None  # heatmap probability of each kept tile
    kmeans: KMeansPatchFilter | None = None
    #: wall seconds of tissue detection (0 when the mask was given or not needed)
    tissue_seconds: float = 0.0
    #: wall seconds of the sampler and the pixel filters
    tiles_seconds: float = 0.0

    def attrs(self, slide: Slide, *, checksum: str = "") -> dict[str, Any]:
        """HDF5 attributes (CLAM/TRIDENT names plus ours)."""
        size0 = self.spec.size_level0(slide.mpp)
        return {
            K.ATTR_PATCH_SIZE: self.spec.size_px,
            K.ATTR_PATCH_SIZE_LEVEL0: float(size0),
            K.ATTR_PATCH_LEVEL: slide.best_level_for_downsample(self.spec.mpp / slide.mpp),
            K.ATTR_MPP: self.spec.mpp,
            K.ATTR_LEVEL0_MPP: slide.mpp,
            K.ATTR_STRIDE: self.spec.stride,
            K.ATTR_SAMPLER: self.sampler,
            K.ATTR_SLIDE_PATH: str(slide.path.resolve()),
            K.ATTR_SLIDE_SHA256: checksum,
            K.ATTR_NAME: slide.name,
            "level_dim": list(slide.dimensions),
            "filters": ",".join(self.removed),
        }


def read_filter_tiles(
    slide: Slide, coords: np.ndarray, spec: TileSpec, *, px: int = FILTER_PX
) -> np.ndarray:
    """Tiles at ``px`` pixels across (same area as ``spec``), for the pixel filters."""
    px = min(px, spec.size_px)
    return slide.read_at_mpp_batch(coords, px, spec.size_um / px)


def _apply_filters(
    slide: Slide,
    coords: np.ndarray,
    spec: TileSpec,
    filters: tuple[str, ...],
    *,
    max_white: float,
    kmeans: KMeansPatchFilter | None,
    removed: dict[str, int],
) -> tuple[np.ndarray, np.ndarray, KMeansPatchFilter | None]:
    keep = np.ones(len(coords), bool)
    if not filters or len(coords) == 0:
        return coords, keep, kmeans
    white = np.empty(len(coords), np.float32)
    stats = np.empty((len(coords), 9), np.float64) if "kmeans" in filters else None
    for i in range(0, len(coords), FILTER_CHUNK):  # statistics a chunk of tiles at a time
        tiles = read_filter_tiles(slide, coords[i:i + FILTER_CHUNK], spec)
        white[i:i + len(tiles)] = white_fraction(tiles)
        if stats is not None:
            stats[i:i + len(tiles)] = patch_colour_stats(tiles)
        del tiles
    if "white" in filters:
        ok = white <= max_white
        removed["white"] = removed.get("white", 0) + int((keep & ~ok).sum())
        keep &= ok
    if stats is not None:
        if kmeans is None:
            kmeans = KMeansPatchFilter().fit(stats=stats)
            logger.info("%s: fitted the K-means patch filter on %d tiles", slide.name, len(stats))
        ok = kmeans.predict(stats=stats)
        removed["kmeans"] = removed.get("kmeans", 0) + int((keep & ~ok).sum())
        keep &= ok
    return coords[keep], keep, kmeans


def tile_slide(
    slide: Slide,
    spec: TileSpec,
    *,
    spots: np.ndarray | None = None,
    spot_ids: np.ndarray | None = None,
    spots_source: str = "spots",
    heatmap: np.ndarray | None = None,
    n_tiles: int | None = None,
    filters: tuple[str, ...] = (),
    tissue_method: str = "otsu",
    min_tissue: float = 0.5,
    min_prob: float = 0.5,
    max_white: float = 0.5,
    kmeans: KMeansPatchFilter | None = None,
    tissue: TissueMask | None = None,
) -> TileResult:
    """Choose tile coordinates on one slide.

    The sampler is spot-centred when ``spots`` (level-0 centres, ``(N, 2)``) is given,
    heatmap-guided when ``heatmap`` is given, otherwise a grid inside tissue. ``filters``
    is any of ``"white"`` and ``"kmeans"``; a given ``kmeans`` filter is reused, otherwise
    one is fitted on this slide's tiles and returned in the result for reuse. A given
    ``tissue`` mask is reused (tiling one slide at several sizes finds tissue once).
    The result records the seconds spent finding tissue and choosing tiles separately.

    With a heatmap, ``n_tiles`` (default 10, as in seed 000) tiles are taken in order of
    probability, skipping those the filters reject.

    Examples
    --------
    >>> from histoexpr.slide import ArraySlide
    >>> from histoexpr.datasets.synthetic import synthetic_he
    >>> s = ArraySlide(synthetic_he(1024, 768, seed=0).rgb, mpp=0.5)
    >>> r = tile_slide(s, TileSpec(128, 0.5), filters=("white",))
    >>> r.coords.shape[1], r.sampler
    (2, 'grid')
    """
    unknown = set(filters) - set(FILTERS)
    if unknown:
        raise InputError(f"unknown filter(s) {sorted(unknown)}; choose from {list(FILTERS)}")
    if spots is not None and heatmap is not None:
        raise InputError("give spots or a heatmap, not both")
    removed: dict[str, int] = {}
    dims, mpp = slide.dimensions, slide.mpp
    t0 = time.perf_counter()

    if spots is not None:
        coords = spot_coords(
            spots, spec, slide_mpp=mpp, dimensions=dims, source=spots_source, ids=spot_ids
        )
        n_cand = len(coords)
        kept, _, kmeans = _apply_filters(
            slide, coords, spec, filters, max_white=max_white, kmeans=kmeans, removed=removed
        )
        return TileResult(kept, spec, None, "spots", n_cand, removed, kmeans=kmeans,
                          tiles_seconds=time.perf_counter() - t0)

    tissue_s = 0.0
    if tissue is None:
        tissue = detect_tissue(slide, method=tissue_method)
        tissue_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if heatmap is not None:
        n = 10 if n_tiles is None else n_tiles
        cand, score = heatmap_coords(
            heatmap, spec, slide_mpp=mpp, dimensions=dims, tissue=tissue,
            min_prob=min_prob, min_tissue=min_tissue,
        )
        if kmeans is None and "kmeans" in filters and len(cand):
            # fit the filter on all candidates at once, then walk the ranking
            kmeans = KMeansPatchFilter().fit(stats=patch_colour_stats(
                read_filter_tiles(slide, cand[: max(200, 4 * n)], spec)))
        chosen, chosen_score, start, chunk = [], [], 0, max(4 * n, 32)
        while start < len(cand) and sum(map(len, chosen)) < n:
            part = cand[start : start + chunk]
            kept, keep, kmeans = _apply_filters(
                slide, part, spec, filters, max_white=max_white, kmeans=kmeans, removed=removed
            )
            chosen.append(kept)
            chosen_score.append(score[start : start + chunk][keep])
            start += chunk
        coords = np.concatenate(chosen)[:n] if chosen else np.zeros((0, 2), np.int64)
        scores = np.concatenate(chosen_score)[:n] if chosen else np.zeros(0)
        if len(coords) < n:
            logger.warning(
                "%s: only %d of %d tiles pass with heatmap probability >= %.2f",
                slide.name, len(coords), n, min_prob,
            )
        return TileResult(coords, spec, tissue, "heatmap", len(cand), removed, scores, kmeans,
                          tissue_s, time.perf_counter() - t0)

    coords = grid_coords(tissue, spec, slide_mpp=mpp, dimensions=dims, min_tissue=min_tissue)
    n_cand = len(coords)
    if n_cand == 0:
        raise TissueError(
            f"{slide.path}: no {spec.size_px}px tile at {spec.mpp:g} µm/px has "
            f">= {min_tissue:.0%} tissue; lower --min-tissue or the tile size"
        )
    coords, _, kmeans = _apply_filters(
        slide, coords, spec, filters, max_white=max_white, kmeans=kmeans, removed=removed
    )
    if n_tiles is not None and len(coords) > n_tiles:
        rng = np.random.default_rng(0)
        coords = coords[np.sort(rng.choice(len(coords), n_tiles, replace=False))]
    return TileResult(coords, spec, tissue, "grid", n_cand, removed, kmeans=kmeans,
                      tissue_seconds=tissue_s, tiles_seconds=time.perf_counter() - t0)
