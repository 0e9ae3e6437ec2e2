"""Slides held in memory: an array (tests, already-decoded images) and plain image files."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError, SlideError
from .base import Slide, pad_region, resolve_mpp
from .integrity import check_complete

logger = logging.getLogger(__name__)

__all__ = ["ArraySlide", "ImageSlide", "build_pyramid"]

#: virtual pyramid: reduce by this factor until the longer side drops below MIN_LEVEL_SIDE
PYRAMID_FACTOR = 4
MIN_LEVEL_SIDE = 1024


def build_pyramid(rgb: np.ndarray, *, factor: int = PYRAMID_FACTOR) -> list[np.ndarray]:
    """Levels of ``rgb`` reduced by ``factor`` (area average) until the longer side is
    below :data:`MIN_LEVEL_SIDE`. Level 0 is ``rgb`` itself (not copied)."""
    from PIL import Image

    levels = [rgb]
    while max(levels[-1].shape[:2]) > MIN_LEVEL_SIDE:
        levels.append(np.asarray(Image.fromarray(levels[-1]).reduce(factor)))
    return levels


class ArraySlide(Slide):
    """An in-memory RGB array as a slide, with a virtual pyramid built on first use.

    Parameters
    ----------
    rgb
        ``(H, W, 3)`` uint8 (an alpha channel is dropped).
    mpp
        Microns per pixel of ``rgb``.
    levels
        Pre-built pyramid levels (level 0 first); built lazily when omitted.

    Examples
    --------
    >>> import numpy as np
    >>> s = ArraySlide(np.full((2048, 4096, 3), 200, np.uint8), mpp=0.25)
    >>> s.dimensions, s.level_count
    ((4096, 2048), 2)
    """

    reader = "array"

    def __init__(
        self,
        rgb: np.ndarray,
        *,
        mpp: float,
        path: str | Path = "<array>",
        levels: list[np.ndarray] | None = None,
    ) -> None:
        rgb = np.asarray(rgb)
        if (rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8
                or 0 in rgb.shape):
            raise InputError(
                f"{path}: expected an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}"
            )
        super().__init__(path, mpp=resolve_mpp(None, mpp, path))
        self._rgb = rgb[..., :3]
        self._levels = levels

    @property
    def levels(self) -> list[np.ndarray]:
        if self._levels is None:
            self._levels = build_pyramid(np.ascontiguousarray(self._rgb))
        return self._levels

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((a.shape[1], a.shape[0]) for a in self.levels)

    def _read(self, x: int, y: int, w: int, h: int, level: int) -> np.ndarray:
        ds = self.level_downsamples[level]
        return pad_region(self.levels[level], round(x / ds), round(y / ds), w, h)


@contextlib.contextmanager
def no_pixel_limit() -> Iterator[None]:
    """Lift PIL's decompression-bomb limit for a trusted slide image, then restore it."""
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _tiff_resolution_mpp(path: Path) -> float | None:
    """Microns per pixel from TIFF XResolution/ResolutionUnit, when they are meaningful."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            tags = page.tags
            if "XResolution" not in tags or "ResolutionUnit" not in tags:
                return None
            num, den = tags["XResolution"].value
            unit = int(tags["ResolutionUnit"].value)
    except Exception:  # not a TIFF, or unreadable tags: no metadata
        return None
    if not num or not den:
        return None
    per_unit = num / den
    if unit == 3:  # centimetre
        return 1e4 / per_unit
    if unit == 2 and per_unit not in (72, 96, 300):  # inch; screen/print defaults mean nothing
        return 25400 / per_unit
    return None


def _decode_fast(path: Path) -> np.ndarray | None:
    """Decode 8-bit RGB(A)/gray JPEG or PNG with imagecodecs (libjpeg-turbo, several times
    faster than PIL on a 9,000 x 10,000 px section); ``None`` means "let PIL do it"."""
    if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
        return None
    try:
        import imagecodecs

        a = imagecodecs.imread(str(path))
    except Exception:  # damaged, unusual or unsupported: PIL decodes or explains
        return None
    if a.dtype != np.uint8 or a.size == 0:  # a damaged stream can decode to 0 x 0
        return None
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=2)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        return np.ascontiguousarray(a[..., :3])
    return None


class ImageSlide(ArraySlide):
    """A plain image file (JPEG, PNG, non-pyramidal TIFF) of any size, decoded once.

    Spatial-transcriptomics H&E images (e.g. 9,300 x 9,900 px her2st JPEGs) are the use:
    the image is decoded into memory on open and tiles are cut from the array; coarser
    levels are derived for thumbnails and low-magnification reads.
    """

    reader = "image"

    def __init__(self, path: str | Path, *, mpp: float | None = None) -> None:
        from PIL import Image

        path = Path(path)
        check_complete(path)  # decoders fill a cut JPEG with grey instead of failing
        rgb = _decode_fast(path)
        if rgb is None:
            try:
                with no_pixel_limit(), Image.open(path) as im:
                    im.load()
                    rgb = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
            except (OSError, SyntaxError, ValueError) as e:
                raise SlideError(
                    f"{path}: cannot decode the image ({e}); re-export or copy it again"
                ) from e
        found = _tiff_resolution_mpp(path) if path.suffix.lower() in (".tif", ".tiff") else None
        super().__init__(rgb, mpp=resolve_mpp(found, mpp, path), path=path)

    @property
    def vendor(self) -> str:
        return self.path.suffix.lstrip(".").lower() or "image"

    @staticmethod
    def can_open(path: Path) -> bool:
        from PIL import Image

        if path.is_dir():
            return False
        try:
            with no_pixel_limit(), Image.open(path) as im:
                im.verify()
            return True
        except Exception:
            return False
