"""Which tiles of a slide go in its bag.

:func:`select_tiles` keeps

- ``"all"``: every tissue tile in the file;
- ``"top"``: the ``n`` tiles with the highest tumour-heatmap score (seed 000 takes 10 patches
  from the most tumorous regions); scores come from a heatmap folder (:func:`tile_scores`);
- ``"random"``: ``n`` tiles drawn without replacement with a seed (reproducible per slide).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ... import _keys as K
from ...errors import InputError
from ...slide import open_slide, read_image
from ...tissue import mean_in_squares, summed_area

__all__ = ["SELECTIONS", "select_tiles", "tile_scores"]

#: how :func:`select_tiles` may choose tiles
SELECTIONS = ("all", "top", "random")
_MAP_SUFFIXES = (".npy", ".png", ".tif", ".tiff", ".jpg")


def _stable_seed(seed: int, slide: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(slide.encode())) % (2**32)


def select_tiles(
    n_tiles: int,
    how: str = "all",
    *,
    n: int | None = None,
    scores: np.ndarray | None = None,
    seed: int = 0,
    key: str = "",
) -> np.ndarray:
    """Indices of the tiles to keep out of ``n_tiles``.

    Parameters
    ----------
    n_tiles
        Tiles in the slide.
    how
        ``"all"``, ``"top"`` (highest ``scores`` first) or ``"random"``.
    n
        Tiles to keep for ``"top"``/``"random"``; a slide with fewer keeps all (in score
        order for ``"top"``). Ignored by ``"all"``.
    scores
        One tumour score per tile, required by ``"top"``; NaN scores rank last.
    seed, key
        ``"random"`` draws with a generator seeded by ``seed`` and ``key`` (the slide name),
        so each slide's draw is reproducible and independent of the order slides are read.

    Examples
    --------
    >>> select_tiles(5, "top", n=2, scores=np.array([0.1, 0.9, 0.5, np.nan, 0.7])).tolist()
    [1, 4]
    >>> len(select_tiles(100, "random", n=10, seed=1, key="s1"))
    10
    """
    if how not in SELECTIONS:
        raise InputError(f"unknown tile selection {how!r}; choose one of {', '.join(SELECTIONS)}")
    if how == "all":
        return np.arange(n_tiles)
    if n is None or int(n) < 1:
        raise InputError(f"tile selection {how!r} needs n >= 1 tiles per slide (got {n})")
    k = min(int(n), n_tiles)
    if how == "top":
        if scores is None:
            raise InputError("tile selection 'top' needs a tumour heatmap (scores per tile)")
        s = np.asarray(scores, np.float64)
        if len(s) != n_tiles:
            raise InputError(f"{len(s)} scores for {n_tiles} tiles")
        order = np.argsort(-np.nan_to_num(s, nan=-np.inf), kind="stable")
        return order[:k]
    rng = np.random.default_rng(_stable_seed(seed, key))
    return np.sort(rng.choice(n_tiles, k, replace=False))

def _read_map(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        hm = np.load(path, allow_pickle=False).astype(np.float64)
    else:
        hm = read_image(path, mode="L").astype(np.float64) / 255.0
    if hm.ndim != 2:
        raise InputError(f"{path}: a heatmap must be a 2-D map, got shape {hm.shape}")
    return hm


def _slide_dimensions(attrs: Mapping[str, Any], source: str) -> tuple[int, int]:
    dims = attrs.get("slide_dimensions")
    if dims is not None:
        return int(dims[0]), int(dims[1])
    path = attrs.get(K.ATTR_SLIDE_PATH)
    if not path or not Path(str(path)).exists():
        raise InputError(f"{source}: a heatmap image needs the slide's size, but the feature "
                         f"file names no readable slide (slide_path={path!r}); give tile "
                         "scores as <slide>.csv with columns x, y, score instead")
    return tuple(open_slide(str(path)).dimensions)  # type: ignore[return-value]


def tile_scores(
    heatmaps: str | Path,
    slide: str,
    coords: np.ndarray,
    attrs: Mapping[str, Any],
    *,
    source: str = "",
) -> np.ndarray:
    """Tumour score of each tile from a heatmap folder.

    The folder holds, per slide, either ``<slide>.csv`` with columns ``x, y, score`` (one row
    per tile, level-0 top-left corners as in the feature file; tiles not listed score NaN),
    or a probability map ``<slide>.npy``/``.png``/``.tif`` covering the whole slide at any
    scale (8-bit images are divided by 255). A map is averaged over each tile's square; the
    slide's level-0 size comes from the feature file (``slide_dimensions`` or the slide).
    """
    import pandas as pd

    d = Path(heatmaps)
    csv = d / f"{slide}.csv"
    if csv.is_file():
        t = pd.read_csv(csv)
        missing = {"x", "y", "score"} - set(t.columns)
        if missing:
            raise InputError(f"{csv}: missing column(s) {sorted(missing)}; need x, y, score")
        lookup = {(int(x), int(y)): float(s) for x, y, s in t[["x", "y", "score"]].to_numpy()}
        return np.array([lookup.get((int(x), int(y)), np.nan) for x, y in coords])
    for suffix in _MAP_SUFFIXES:
        p = d / f"{slide}{suffix}"
        if p.is_file():
            hm = _read_map(p)
            w0, h0 = _slide_dimensions(attrs, source or slide)
            size0 = float(attrs.get(K.ATTR_PATCH_SIZE_LEVEL0) or 0)
            if size0 <= 0:
                spec = attrs.get("tile_spec") or {}
                size0 = float(spec.get("size_px", 224)) * float(spec.get("mpp", 1.0)) / float(
                    attrs.get(K.ATTR_LEVEL0_MPP) or spec.get("mpp", 1.0))
            scale = (w0 / hm.shape[1], h0 / hm.shape[0])
            return mean_in_squares(summed_area(np.nan_to_num(hm)), coords, size0, scale)
    raise InputError(f"{d}: no heatmap for slide {slide} (looked for {slide}.csv and "
                     f"{slide}{{{','.join(_MAP_SUFFIXES)}}})")


