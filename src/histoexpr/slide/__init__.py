"""Slides behind one protocol, opened by the first reader in a priority list that takes them.

Examples
--------
>>> from histoexpr.slide import open_slide, SLIDE_READERS
>>> SLIDE_READERS.list()
['tilefolder', 'openslide', 'tiffslide', 'image']
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from ..errors import SlideError
from ..registry import Registry
from .array import ArraySlide, ImageSlide
from .base import Slide, resize_rgb, slide_name
from .tilefolder import TileFolderSlide
from .wsi import OpenSlideSlide, TiffSlideSlide

logger = logging.getLogger(__name__)

__all__ = [
    "SLIDE_READERS",
    "ArraySlide",
    "ImageSlide",
    "OpenSlideSlide",
    "Slide",
    "TiffSlideSlide",
    "TileFolderSlide",
    "file_sha256",
    "open_slide",
    "resize_rgb",
    "slide_checksum",
    "slide_name",
]

#: readers tried in this order (highest priority first) by :func:`open_slide`
SLIDE_READERS: Registry[type[Slide]] = Registry("slide reader")
SLIDE_READERS.register("tilefolder", TileFolderSlide, priority=40)
SLIDE_READERS.register("openslide", OpenSlideSlide, priority=30)
SLIDE_READERS.register("tiffslide", TiffSlideSlide, priority=20)
SLIDE_READERS.register("image", ImageSlide, priority=10)


def open_slide(path: str | Path, *, mpp: float | None = None, reader: str | None = None) -> Slide:
    """Open a slide with the first registered reader that recognises it.

    Parameters
    ----------
    path
        A whole-slide file (.svs, .tif, .ndpi, ...), a plain image (.jpg, .png, .tif), or a
        folder of tiles named ``<slide> [x=..,y=..,w=..,h=..].png``.
    mpp
        Microns per pixel at level 0, used when the file records none (JPEG/PNG, tile
        folders); the file's own value wins otherwise (a mismatch is logged).
    reader
        Force one reader by name (see ``SLIDE_READERS.list()``).

    Raises
    ------
    SlideError
        Missing path, or no reader can open it (the message lists why each one failed).
    MppMissingError
        The file records no pixel size and ``mpp`` was not given.

    Examples
    --------
    >>> slide = open_slide("CMU-1-Small-Region.svs")  # doctest: +SKIP
    >>> slide.mpp, slide.dimensions  # doctest: +SKIP
    (0.499, (2220, 2967))
    """
    path = Path(path)
    if not path.exists():
        raise SlideError(f"{path}: no such file or folder; check the path")
    if reader is not None:
        return SLIDE_READERS.get(reader)(path, mpp=mpp)
    tried: list[str] = []
    for name in SLIDE_READERS.list():
        cls = SLIDE_READERS.get(name)
        if not cls.can_open(path):  # type: ignore[attr-defined]
            continue
        try:
            slide = cls(path, mpp=mpp)
        except SlideError as e:
            if type(e) is not SlideError:  # MppMissingError etc. are final, not "try next"
                raise
            logger.debug("%s could not open %s: %s", name, path, e)
            tried.append(f"{name}: {e}")
            continue
        logger.debug("opened %s with the %s reader", path, name)
        return slide
    if tried:
        # the most specific reader's message is the most useful; keep the others for --debug
        raise SlideError(tried[0])
    raise SlideError(
        f"{path}: not a slide or image any reader recognises "
        f"(tried {', '.join(SLIDE_READERS.list())}); is it a complete whole-slide image?"
    )


def file_sha256(path: str | Path, *, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def slide_checksum(slide: Slide) -> str:
    """A content checksum for a slide: the file's SHA-256, or the tile folder's index hash."""
    if isinstance(slide, TileFolderSlide):
        return slide.checksum()
    if slide.path.is_file():
        return file_sha256(slide.path)
    return ""
