"""Slides behind one protocol, opened by the first reader in a priority list that takes them.

Before any reader runs, :func:`open_slide` checks the path (a broken link names its target)
and that the file is complete (:mod:`.integrity`), so a truncated file gets one message
whichever reader would have met it; what the reading libraries log meanwhile is kept out of
the terminal (``--debug`` shows it). A file one reader refuses and another opens is opened
with one warning naming what the first found. User images that are not slides (thumbnails,
stain targets, heatmaps) are read through :mod:`.images`, under the same checks.

Examples
--------
>>> from histoexpr.slide import open_slide, SLIDE_READERS
>>> SLIDE_READERS.list()
['ngff', 'tilefolder', 'openslide', 'tiffslide', 'image']
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from ..errors import SlideError
from ..registry import Registry
from .array import ArraySlide, ImageSlide
from .base import Slide, resize_rgb, slide_name
from .images import image_dimensions, read_image, read_thumbnail
from .integrity import check_complete, check_path, library_noise, summarise_noise
from .ngff import NGFFSlide
from .tilefolder import TileFolderSlide
from .wsi import OpenSlideSlide, TiffSlideSlide

logger = logging.getLogger(__name__)

__all__ = [
    "SLIDE_READERS",
    "ArraySlide",
    "ImageSlide",
    "NGFFSlide",
    "OpenSlideSlide",
    "Slide",
    "TiffSlideSlide",
    "TileFolderSlide",
    "file_sha256",
    "image_dimensions",
    "open_slide",
    "read_image",
    "read_thumbnail",
    "resize_rgb",
    "slide_checksum",
    "slide_name",
]

#: readers tried in this order (highest priority first) by :func:`open_slide`
SLIDE_READERS: Registry[type[Slide]] = Registry("slide reader")
SLIDE_READERS.register("ngff", NGFFSlide, priority=45)
SLIDE_READERS.register("tilefolder", TileFolderSlide, priority=40)
SLIDE_READERS.register("openslide", OpenSlideSlide, priority=30)
SLIDE_READERS.register("tiffslide", TiffSlideSlide, priority=20)
SLIDE_READERS.register("image", ImageSlide, priority=10)


def open_slide(path: str | Path, *, mpp: float | None = None, reader: str | None = None) -> Slide:
    """Open a slide with the first registered reader that recognises it.

    Parameters
    ----------
    path
        A whole-slide file (.svs, .tif, .ndpi, ...), a plain image (.jpg, .png, .tif), a
        folder of tiles named ``<slide> [x=..,y=..,w=..,h=..].png``, or an OME-Zarr
        multiscale image (``store.zarr/images/<name>`` of a SpatialData store).
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
    check_path(path)
    refused: list[str] = []
    noise: list[str] = []
    try:
        with library_noise() as noise:
            check_complete(path)  # the same message whichever reader would have met the cut
            if reader is not None:
                slide = SLIDE_READERS.get(reader)(path, mpp=mpp)
            else:
                slide = _first_reader(path, mpp, refused)
    except SlideError:
        if noise:
            logger.debug("%s: the reading libraries reported: %s", path, summarise_noise(noise))
        raise
    if refused:
        logger.warning("%s: opened with the %s reader; %s", path, slide.reader,
                       "; ".join(refused))
    if noise:
        logger.debug("%s: the reading libraries reported: %s", path, summarise_noise(noise))
    logger.debug("opened %s with the %s reader", path, slide.reader)
    return slide


def _first_reader(path: Path, mpp: float | None, refused: list[str]) -> Slide:
    """The slide from the first registered reader that recognises ``path`` and opens it;
    ``refused`` gets one ``"<reader> refused it: <why>"`` per reader that tried and failed."""
    for name in SLIDE_READERS.list():
        cls = SLIDE_READERS.get(name)
        if not cls.can_open(path):  # type: ignore[attr-defined]
            continue
        try:
            return cls(path, mpp=mpp)
        except SlideError as e:
            if type(e) is not SlideError:  # MppMissingError etc. are final, not "try next"
                raise
            why = str(e).removeprefix(f"{path}: ")
            logger.debug("%s could not open %s: %s", name, path, why)
            refused.append(f"{name} refused it: {why}")
    if refused:
        # the most specific reader's message is the most useful; the others are in --debug
        raise SlideError(f"{path}: {refused[0].split(': ', 1)[1]}")
    raise SlideError(
        f"{path}: not a slide or image any reader recognises "
        f"(tried {', '.join(SLIDE_READERS.list())}); is it a whole-slide image, an image or "
        "a folder of named tiles?"
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
