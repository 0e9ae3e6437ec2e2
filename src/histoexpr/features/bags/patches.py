"""The image patches behind a bag: read back from the slide its features were cut from.

Models trained end to end on pixels (``input = "patch_bags"`` in their tags, e.g.
:class:`histoexpr.models.gastric_finetune.GastricFinetune`) take, per slide, the uint8
patches of the bag's tiles rather than their features. :func:`read_bag_patches` finds the
slide named in the bag's feature file (attribute ``slide_path``, written by
:func:`histoexpr.features.embed_to_h5`) and reads each tile at the tile spec recorded there
(``tile_spec = {size_px, mpp}``) with the slide reader's own
:meth:`~histoexpr.slide.Slide.read_at_mpp_batch`, the same call feature extraction makes,
so the patches are the pixels the encoder saw (before any stain normalisation).

:func:`minmax_normalise` is seed 000's per-patch min-max normalisation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ... import _keys as K
from ...errors import InputError, SlideError
from ...slide import open_slide, slide_name
from ...tiling import load_coords
from ..store import read_feature_attrs

__all__ = ["find_slide", "minmax_normalise", "read_bag_patches", "tile_spec"]

logger = logging.getLogger(__name__)

_NEED_SLIDES = "the patch models need the slides; pass --slides DIR or re-embed"


def tile_spec(attrs: Mapping[str, Any], *, source: str = "") -> tuple[int, float]:
    """``(size_px, mpp)`` of the tiles in a feature file, from its attributes.

    ``tile_spec`` (as :func:`~histoexpr.features.embed_to_h5` writes it) comes first, then the
    coordinate-file keys ``patch_size`` and ``mpp``.

    Examples
    --------
    >>> tile_spec({"tile_spec": {"size_px": 224, "mpp": 0.5}})
    (224, 0.5)
    """
    spec = attrs.get(K.UNS_TILE_SPEC)
    if isinstance(spec, Mapping) and spec.get("size_px") and spec.get("mpp"):
        return int(spec["size_px"]), float(spec["mpp"])
    if attrs.get(K.ATTR_PATCH_SIZE) and attrs.get(K.ATTR_MPP):
        return int(attrs[K.ATTR_PATCH_SIZE]), float(attrs[K.ATTR_MPP])
    raise InputError(f"{source or 'feature file'}: no tile spec (size_px, mpp) in its "
                     f"attributes, so its patches cannot be read back; {_NEED_SLIDES}")


def find_slide(recorded: str | Path, *, slides_dir: str | Path | None = None,
               slide: str | None = None) -> Path | None:
    """Where the slide recorded as ``recorded`` is now, or ``None``.

    The recorded path is used when it exists. Otherwise, in ``slides_dir``: the entry with
    the recorded file (or folder) name, then the entry whose slide id
    (:func:`histoexpr.slide.slide_name`) equals that of the recorded path or ``slide``.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "s1.svs").write_bytes(b"")
    >>> find_slide("/gone/s1.svs", slides_dir=d).name, find_slide("/gone/s2.svs", slides_dir=d)
    ('s1.svs', None)
    """
    p = Path(recorded)
    if p.exists():
        return p
    if slides_dir is None:
        return None
    d = Path(slides_dir)
    if (d / p.name).exists():
        return d / p.name
    wanted = {slide_name(p)} | ({str(slide)} if slide else set())
    if d.is_dir():
        for q in sorted(d.iterdir()):
            if not q.name.startswith(".") and slide_name(q) in wanted:
                return q
    return None


def _level0_mpp(attrs: Mapping[str, Any]) -> float | None:
    """The slide's level-0 mpp as recorded at tiling time (for plain images that carry
    none): the feature file's ``level0_mpp``, else its coordinate file's."""
    if attrs.get(K.ATTR_LEVEL0_MPP):
        return float(attrs[K.ATTR_LEVEL0_MPP])
    coords_file = attrs.get("coords_file")
    if coords_file and Path(str(coords_file)).is_file():
        try:
            found = load_coords(coords_file)[1].get(K.ATTR_LEVEL0_MPP)
        except (InputError, OSError):
            return None
        return float(found) if found else None
    return None


def read_bag_patches(
    bag: Any,
    *,
    size_px: int | None = None,
    slide: Any = None,
    slides_dir: str | Path | None = None,
    slide_mpp: float | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """The uint8 image patches ``(N, S, S, 3)`` of a bag's tiles, in the bag's tile order.

    Parameters
    ----------
    bag
        A :class:`~histoexpr.features.bags.Bag` read from a feature file (``bag.source``),
        whose attributes give the slide path and the tile spec (``size_px``, ``mpp``).
    size_px
        Side of the returned patches; ``None`` keeps the recorded ``size_px``. Another value
        reads the *same* tissue square (``size_px_recorded * mpp`` microns) resampled to
        ``size_px`` pixels, i.e. at ``mpp * size_px_recorded / size_px`` µm/px.
    slide
        An already-open :class:`~histoexpr.slide.Slide` to read from instead of the
        recorded path (it is not closed here).
    slides_dir
        A folder to look in when the recorded absolute path no longer exists (slides moved
        or copied to another machine): see :func:`find_slide`.
    slide_mpp
        Level-0 µm/px for slides whose file records none (JPEG/PNG); by default the value
        recorded at tiling time (``level0_mpp`` of the feature file or its coordinate file).
    workers
        Reader threads (see :meth:`~histoexpr.slide.Slide.read_at_mpp_batch`).

    Returns
    -------
    ndarray
        ``(len(bag), S, S, 3)`` uint8.

    Raises
    ------
    InputError
        The bag has no feature file, the file records no slide path or tile spec, or the
        slide is missing or unreadable; the message names the feature file and says to
        pass ``--slides DIR`` or re-embed.

    Examples
    --------
    >>> import tempfile
    >>> from histoexpr.features import build_encoder, embed_to_h5
    >>> from histoexpr.features.bags import load_bag
    >>> from histoexpr.slide import ArraySlide
    >>> rgb = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    >>> s = ArraySlide(rgb, mpp=0.5)
    >>> h5, _ = embed_to_h5(Path(tempfile.mkdtemp()) / "s.h5", s, np.array([[0, 0], [64, 32]]),
    ...                     build_encoder("toy"), size_px=32, mpp=1.0)
    >>> patches = read_bag_patches(load_bag(h5), slide=s)
    >>> patches.shape, patches.dtype
    ((2, 32, 32, 3), dtype('uint8'))
    """
    source = getattr(bag, "source", None)
    coords = np.asarray(bag.coords, np.int64).reshape(-1, 2)
    if source is None:
        raise InputError(f"bag {getattr(bag, 'slide', '?')!r} was not read from a feature "
                         "file, so its slide and tile spec are unknown; load bags with "
                         "histoexpr.features.bags.load_bags")
    attrs = read_feature_attrs(source)
    spec_size, spec_mpp = tile_spec(attrs, source=str(source))
    size = spec_size if size_px is None else int(size_px)
    if size < 1:
        raise InputError(f"size_px must be a positive number of pixels, got {size_px}")
    mpp = spec_mpp * spec_size / size
    if slide is not None:
        return slide.read_at_mpp_batch(coords, size, mpp, workers=workers)

    recorded = attrs.get(K.ATTR_SLIDE_PATH)
    if not recorded:
        raise InputError(f"{source}: the feature file records no slide path; {_NEED_SLIDES}")
    path = find_slide(str(recorded), slides_dir=slides_dir, slide=getattr(bag, "slide", None))
    if path is None:
        where = f" nor in {slides_dir}" if slides_dir is not None else ""
        raise InputError(f"{source}: its slide {recorded} is not there{where}; {_NEED_SLIDES}")
    if path != Path(str(recorded)):
        logger.debug("%s: slide moved, reading %s", source, path)
    given = slide_mpp if slide_mpp is not None else _level0_mpp(attrs)
    try:
        with open_slide(path, mpp=given) as s:
            return s.read_at_mpp_batch(coords, size, mpp, workers=workers)
    except SlideError as e:
        raise InputError(f"{source}: cannot read its slide {path} ({e}); {_NEED_SLIDES}") from e


def minmax_normalise(patches: Any) -> np.ndarray:
    """Seed 000's per-patch min-max normalisation: float32 in [0, 1], same shape.

    For each patch (the leading axis indexes patches; a single ``(H, W, 3)`` patch is one
    patch) the minimum over *all* its pixels and channels is subtracted, and the result is
    divided by its maximum, i.e. ``(x - min) / (max - min)``: the darkest value becomes 0
    and the brightest 1 (one scale for the three channels, so hues are kept). A constant
    patch (``max == min``) has no contrast to stretch and becomes all zeros.

    Examples
    --------
    >>> p = np.array([[[[10, 60, 110]]], [[[7, 7, 7]]]], np.uint8)  # two 1 x 1 patches
    >>> minmax_normalise(p).reshape(2, 3).tolist()
    [[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]]
    """
    x = np.asarray(patches, np.float32)
    if x.ndim < 3:
        raise InputError(f"expected patches (N, H, W, C) or one (H, W, C), got shape {x.shape}")
    one = x.ndim == 3
    if one:
        x = x[None]
    axes = tuple(range(1, x.ndim))
    lo = x.min(axis=axes, keepdims=True)
    span = x.max(axis=axes, keepdims=True) - lo
    out = np.divide(x - lo, span, out=np.zeros_like(x), where=span > 0)
    return out[0] if one else out
