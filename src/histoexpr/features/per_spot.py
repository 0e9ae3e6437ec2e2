"""Features of spot-centred patches for a cohort AnnData, cached per section.

:func:`spot_features` returns one row per spot (in ``adata`` order) from any feature source:

- an encoder of the registry (``"efficientnet_lite0"``, ``"resnet50"``, ...), pretrained or
  randomly initialised (``pretrained=False``: the random-init baseline);
- ``"colour_hist"``: colour histograms of the same patches (the colour baseline).

Each section's features are written to ``<cache>/<key>/<section>.h5`` (``coords``,
``features``, attributes) as soon as they are computed, so an interrupted run resumes with
the sections already done; a cached file is used only when its patch corners and settings
match, the settings including the section image's size and modification time (a regenerated
or replaced image is embedded again).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _keys as K
from ..tiling.spec import TileSpec
from .colour import COLOUR_FEATURES, colour_histogram
from .encoders import build_encoder
from .extract import embed
from .store import load_features, save_features

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

logger = logging.getLogger(__name__)

__all__ = ["feature_key", "obsm_key", "spot_features"]


def feature_key(source: str, *, pretrained: bool = True) -> str:
    """The name of a feature source: ``"efficientnet_lite0"``, ``"resnet50-random"``,
    ``"colour_hist"``."""
    if source == COLOUR_FEATURES or pretrained:
        return source
    return f"{source}-random"


def obsm_key(source: str, *, pretrained: bool = True) -> str:
    """Where the features live in ``adata.obsm`` (``"X_<key>"``)."""
    return f"X_{feature_key(source, pretrained=pretrained)}"


def _image_stamp(adata: AnnData, section: str) -> list[int] | None:
    """``[bytes, mtime_ns]`` of a section's image file (``None`` for in-memory images)."""
    info = adata.uns.get(K.UNS_SECTIONS, {}).get(section, {})
    p = info.get("image_path")
    if not p or not Path(p).is_file():
        return None
    st = Path(p).stat()
    return [int(st.st_size), int(st.st_mtime_ns)]


def _cached(path: Path, coords: np.ndarray, settings: dict[str, Any]) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        c, f, attrs = load_features(path)
    except Exception as e:  # a half-written or foreign file: recompute it
        logger.warning("%s: unreadable cache (%s); recomputing", path, e)
        return None
    if c.shape != coords.shape or not np.array_equal(c, coords) or \
            attrs.get("settings") != settings:
        logger.info("%s: cached for other spots or settings; recomputing", path)
        return None
    return f


def spot_features(
    adata: AnnData,
    source: str,
    spec: TileSpec,
    *,
    pretrained: bool = True,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | None = None,
    stain: Any = None,
    encoder: Any = None,
    store: bool = True,
    tta: bool = False,
    variant: str = "",
) -> np.ndarray:
    """Features of every spot's patch, ``(n_obs, D)`` float32, in ``adata`` order.

    Parameters
    ----------
    adata
        Spots with ``obs["x"]``, ``obs["y"]``, ``obs["slide_id"]`` and section images in
        ``uns["sections"]`` (any histoexpr spatial reader).
    source
        An encoder name (see ``ENCODERS.list()``) or ``"colour_hist"``.
    spec
        Patch size and pixel size (seed 003: ``TileSpec.from_um(112, size_px=224)``).
    pretrained
        ``False`` gives the random-init baseline of the same architecture.
    cache_dir
        Folder for the per-section HDF5 cache (none by default).
    batch_size, num_workers, device
        Passed to :func:`histoexpr.features.embed`.
    stain
        A fitted stain normaliser applied to every patch.
    encoder
        A built :class:`~histoexpr.features.Encoder` to reuse (else built here).
    store
        Also put the result in ``adata.obsm[obsm_key(source)]``.
    tta
        Encoder features averaged over each patch's 8 flips and rotations (cached apart,
        under ``<key>-tta``); colour histograms do not depend on orientation.
    variant
        A name for features of transformed patches (e.g. ``"aug-light-0"``, a stain
        augmented copy), cached apart under ``<key>-<variant>``.

    Examples
    --------
    >>> import tempfile
    >>> from histoexpr.datasets.synthetic_st import synthetic_st
    >>> from histoexpr.expression import read_sections
    >>> adata = read_sections(synthetic_st(tempfile.mkdtemp(), n_sections=1, grid=(3, 2)).specs)
    >>> spot_features(adata, "toy", TileSpec.from_um(112, size_px=32)).shape
    (6, 16)
    >>> sorted(adata.obsm)
    ['X_toy']
    """
    from ..tiling.spots import open_section, section_coords

    is_colour = source == COLOUR_FEATURES
    tta = bool(tta) and not is_colour
    key = feature_key(source, pretrained=pretrained) + ("-tta" if tta else "")
    key += f"-{variant}" if variant else ""
    settings = {"source": source, "pretrained": bool(pretrained), "spec": spec.to_dict(),
                "stain": None if stain is None else stain.params(), "tta": tta}
    # the network is built on first use, so a fully cached run never loads it
    out: np.ndarray | None = None
    for section in adata.obs[K.SLIDE_ID].astype(str).unique():
        slide = open_section(adata, section)
        rows, coords = section_coords(adata, section, spec, slide=slide)
        path = Path(cache_dir) / key / f"{section}.h5" if cache_dir is not None else None
        image = _image_stamp(adata, section)
        f = _cached(path, coords, {**settings, "image": image}) if path is not None else None
        if f is None:
            if is_colour:
                tiles = slide.read_at_mpp_batch(coords, spec.size_px, spec.mpp)
                if stain is not None:
                    tiles = stain.transform(tiles)
                f = colour_histogram(tiles)
            else:
                if encoder is None:
                    encoder = build_encoder(source, pretrained=pretrained)
                f = embed(slide, coords, encoder, size_px=spec.size_px, mpp=spec.mpp,
                          batch_size=batch_size, num_workers=num_workers, device=device,
                          stain=stain, tta=tta)
            if path is not None:
                save_features(path, coords, f, {"settings": {**settings, "image": image},
                                                "section": section})
            logger.info("%s: %s features for %d spots", section, key, len(rows))
        if out is None:
            out = np.zeros((adata.n_obs, f.shape[1]), np.float32)
        out[rows] = f
    if out is None:
        out = np.zeros((0, 0), np.float32)
    if store:
        adata.obsm[obsm_key(source, pretrained=pretrained)] = out
    return out
