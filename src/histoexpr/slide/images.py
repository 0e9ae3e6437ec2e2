"""User images read the way the slide readers read them: path and completeness checked,
PIL's decompression-bomb limit lifted for the trusted file (a 92-megapixel section JPEG is
not a bomb), library noise kept out of the terminal, and errors as one clear message.

:func:`read_thumbnail` decodes no more than it needs: a JPEG at 1/2, 1/4 or 1/8 scale
(libjpeg's DCT scaling through PIL draft mode), a pyramidal TIFF or scanner file from its
coarsest sufficient level, a tile folder from its virtual levels. :func:`read_image`
decodes a whole image (stain targets, heatmaps, training patches).

Examples
--------
>>> import tempfile, os
>>> import numpy as np
>>> from PIL import Image
>>> p = os.path.join(tempfile.mkdtemp(), "big.jpg")
>>> Image.fromarray(np.full((3000, 4000, 3), 200, np.uint8)).save(p)
>>> read_thumbnail(p, 240).shape
(180, 240, 3)
>>> read_image(p).shape
(3000, 4000, 3)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SlideError
from .array import no_pixel_limit
from .base import resize_rgb
from .integrity import check_complete, check_path, file_kind, library_noise, summarise_noise

logger = logging.getLogger(__name__)

__all__ = ["image_dimensions", "read_image", "read_thumbnail"]


def _fit(w: int, h: int, max_size: int) -> tuple[int, int]:
    """``(w, h)`` scaled so the longer side is at most ``max_size`` (never enlarged)."""
    scale = max(w, h) / max_size
    if scale <= 1:
        return w, h
    return max(1, round(w / scale)), max(1, round(h / scale))


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """The block that reads ``path``: the file is first checked to be complete, and what the
    reading libraries report meanwhile is kept out of the terminal and logged at debug
    level once the block ends (also when it raises)."""
    noise: list[str] = []
    try:
        with library_noise() as noise:
            check_complete(path)
            yield
    finally:
        if noise:
            logger.debug("%s: the reading libraries reported: %s", path, summarise_noise(noise))


def _as_rgb(im) -> np.ndarray:
    """A PIL image as ``(H, W, 3)`` uint8; transparency is laid over white."""
    from PIL import Image

    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, np.float64)
        top = a.max() or 1.0
        return np.repeat((a * (255.0 / top) + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


def read_thumbnail(path: str | Path, max_size: int = 1024) -> np.ndarray:
    """A slide or image as an ``(h, w, 3)`` uint8 RGB array whose longer side is at most
    ``max_size`` pixels, decoding as little of the file as its format allows.

    Parameters
    ----------
    path
        A JPEG/PNG/plain TIFF, a whole-slide file (.svs, pyramidal .tif, .ndpi, ...), or a
        folder of named tiles.
    max_size
        Longest side of the result in pixels.

    Raises
    ------
    SlideError
        Missing path, broken link, incomplete file, or nothing can decode it.

    Examples
    --------
    >>> read_thumbnail("her2st/images/C3.jpg", 240).shape  # doctest: +SKIP
    (240, 224, 3)
    """
    path = Path(path)
    check_path(path)
    with _reading(path):
        return _thumbnail(path, int(max_size))


def _folder_slide(path: Path) -> Any:
    """A folder as a slide: an OME-Zarr image (SpatialData) or a tile folder."""
    from .ngff import NGFFSlide, ngff_images
    from .tilefolder import TileFolderSlide

    if ngff_images(path):
        return NGFFSlide(path, mpp=1.0)
    return TileFolderSlide(path, mpp=1.0)


def _thumbnail(path: Path, max_size: int) -> np.ndarray:
    if path.is_dir():  # a tile folder or an OME-Zarr image; the pixel size plays no part
        with _folder_slide(path) as s:
            return s.thumbnail(max_size)
    kind = file_kind(path)
    if kind == "tiff":
        for reader in (_tiffslide_thumbnail, _openslide_thumbnail):
            try:
                return reader(path, max_size)
            except Exception as e:  # the next decoder tries; PIL explains a failure
                logger.debug("%s: %s could not make a thumbnail: %s", path, reader.__name__, e)
    elif kind is None:
        try:
            return _openslide_thumbnail(path, max_size)
        except Exception as e:  # not an OpenSlide format: PIL explains a failure
            logger.debug("%s: OpenSlide could not make a thumbnail: %s", path, e)
    return _pil_thumbnail(path, max_size)


def _pil_thumbnail(path: Path, max_size: int) -> np.ndarray:
    from PIL import Image

    try:
        with no_pixel_limit(), Image.open(path) as im:
            tw, th = _fit(*im.size, max_size)
            if im.format == "JPEG":
                # decode at the smallest 1/2**k scale that is still at least twice the
                # target (PIL's own thumbnail rule), so the box filter has pixels to average
                im.draft("RGB", (2 * tw, 2 * th))
            im.load()
            if im.mode == "RGB":  # shrink inside PIL: no full-size copy into numpy
                small = im if im.size == (tw, th) else im.resize(
                    (tw, th), Image.Resampling.BOX)
                return np.asarray(small)
            rgb = _as_rgb(im)
    except (OSError, SyntaxError, ValueError) as e:
        raise SlideError(
            f"{path}: cannot decode the image ({e}); re-export or copy it again"
        ) from e
    return resize_rgb(rgb, (tw, th))


def _tiffslide_thumbnail(path: Path, max_size: int) -> np.ndarray:
    import tiffslide

    with tiffslide.TiffSlide(path) as ts:
        w0, h0 = ts.dimensions
        tw, th = _fit(int(w0), int(h0), max_size)
        level = ts.get_best_level_for_downsample(max(w0 / tw, h0 / th))
        lw, lh = ts.level_dimensions[level]
        arr = np.asarray(ts.read_region((0, 0), level, (lw, lh), as_array=True))
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.dtype != np.uint8:
        arr = (arr.astype(np.float64) * (255.0 / (arr.max() or 1)) + 0.5).astype(np.uint8)
    return resize_rgb(np.ascontiguousarray(arr[..., :3]), (tw, th))


def _openslide_thumbnail(path: Path, max_size: int) -> np.ndarray:
    import openslide

    with openslide.OpenSlide(str(path)) as osr:
        im = osr.get_thumbnail((max_size, max_size))
    return _as_rgb(im)


def image_dimensions(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image, slide (level 0) or tile folder, from its header or
    directory; no pixels are decoded.

    Raises
    ------
    SlideError
        Missing path, broken link, incomplete file, or no reader recognises it.

    Examples
    --------
    >>> image_dimensions("her2st/images/C3.jpg")  # doctest: +SKIP
    (9270, 9936)
    """
    from PIL import Image

    path = Path(path)
    check_path(path)
    with _reading(path):
        if path.is_dir():
            with _folder_slide(path) as s:
                return s.dimensions
        if file_kind(path) == "tiff":
            import tiffslide

            try:
                with tiffslide.TiffSlide(path) as ts:
                    w, h = ts.dimensions
                    return int(w), int(h)
            except Exception as e:  # not a layout tiffslide knows: PIL or OpenSlide
                logger.debug("%s: tiffslide could not read the size: %s", path, e)
        try:
            with no_pixel_limit(), Image.open(path) as im:
                return int(im.size[0]), int(im.size[1])
        except (OSError, SyntaxError, ValueError) as e:
            why = e
        try:
            import openslide

            with openslide.OpenSlide(str(path)) as osr:
                w, h = osr.dimensions
                return int(w), int(h)
        except Exception as e:  # not an OpenSlide format either: PIL's reason is clearer
            logger.debug("%s: OpenSlide could not read the size: %s", path, e)
        raise SlideError(f"{path}: not an image or slide PIL or OpenSlide reads ({why})")


def read_image(path: str | Path, *, mode: str | None = "RGB") -> np.ndarray:
    """Decode a whole image file (JPEG, PNG, TIFF, ...) of any size into an array.

    Parameters
    ----------
    path
        The image.
    mode
        ``"RGB"`` (default; transparency laid over white), ``"L"`` (8-bit grey), or
        ``None`` to keep the stored mode (e.g. a 16-bit grey heatmap as ``uint16``).

    Raises
    ------
    SlideError
        Missing path, broken link, incomplete file, or not an image PIL decodes.
    """
    from PIL import Image

    path = Path(path)
    check_path(path)
    if path.is_dir():
        raise SlideError(f"{path}: a folder, not an image file; give the image's path")
    try:
        with _reading(path), no_pixel_limit(), Image.open(path) as im:
            im.load()
            if mode == "RGB":
                return _as_rgb(im)
            return np.asarray(im if mode is None or im.mode == mode else im.convert(mode))
    except (OSError, SyntaxError, ValueError) as e:
        raise SlideError(
            f"{path}: cannot decode the image ({e}); re-export or copy it again"
        ) from e
