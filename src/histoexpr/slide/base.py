"""The one slide protocol every reader implements.

All coordinates are level-0 pixels, ``(x, y)`` = (column, row) of the top-left corner, as in
OpenSlide. Pixels come back as ``(H, W, 3)`` RGB ``uint8`` arrays.
"""

from __future__ import annotations

import logging
import math
import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ..errors import InputError, MppMissingError

logger = logging.getLogger(__name__)

__all__ = ["Slide", "resize_rgb", "resolve_mpp"]

#: a level is used directly when its downsample is within this relative distance of the target
LEVEL_TOLERANCE = 1e-3
#: pixels read at once when a thumbnail is made from a large level (about 48 MB of RGB):
#: a slide without a pyramid is streamed in strips, never read whole
THUMBNAIL_STRIP_PIXELS = 16 * 2**20
#: thumbnails are made at least this many pixels across (the QC image's), then shrunk
THUMBNAIL_BUILD = 1024


def default_read_workers() -> int:
    """Threads for batched tile reads: one per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an ``(H, W, 3)`` uint8 image to ``size = (width, height)``.

    Area averaging (PIL ``BOX``) when shrinking — the right filter for downsampling
    histology without aliasing — and bilinear when enlarging.
    """
    from PIL import Image

    w, h = size
    if rgb.shape[1] == w and rgb.shape[0] == h:
        return rgb
    shrinking = rgb.shape[1] >= w and rgb.shape[0] >= h
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(rgb).resize((w, h), resample=resample))


def resolve_mpp(found: float | None, given: float | None, path: str | Path) -> float:
    """Pick the slide's microns per pixel.

    The file's own value (``found``) comes first; the caller's ``given`` value is used when
    the file records none, so one ``--slide-mpp`` can serve a batch that mixes scanner files
    and plain images. A disagreement of more than 5 % is logged. With neither, raise
    :class:`MppMissingError` telling the user what to pass.
    """
    if given is not None and not (given > 0 and math.isfinite(given)):
        raise InputError(f"{path}: mpp must be a positive number, got {given!r}")
    if found is not None and found > 0 and math.isfinite(found):
        if given is not None and abs(given - found) / found > 0.05:
            logger.warning(
                "%s: the file says %.4f µm/px; using it rather than the given %.4f",
                path, found, given,
            )
        return float(found)
    if given is not None:
        return float(given)
    raise MppMissingError(
        f"{path}: the file records no pixel size (microns per pixel); "
        "pass it with --mpp (histoexpr info) or --slide-mpp (histoexpr tile), e.g. 0.5 for a "
        "20x scan, or open_slide(..., mpp=...)"
    )


def slide_name(path: str | Path) -> str:
    """Slide id from a path: the file name without its extension (``.ome.tif(f)`` counts as
    one), or a folder's name. TCGA ids keep their dotted UUID part."""
    p = Path(path)
    n = p.name
    for ext in (".ome.tiff", ".ome.tif"):
        if n.lower().endswith(ext):
            return n[: -len(ext)]
    return p.stem if p.suffix and not p.is_dir() else n


class Slide(ABC):
    """A whole-slide image behind one interface.

    Subclasses provide the level geometry and :meth:`_read` ; everything else
    (:meth:`read_region` checks, :meth:`read_at_mpp`, :meth:`thumbnail`) lives here.
    """

    #: registry name of the reader that opened the slide
    reader: str = "?"

    def __init__(self, path: str | Path, *, mpp: float) -> None:
        self.path = Path(path)
        self.mpp = float(mpp)

    # -- geometry supplied by readers -------------------------------------------------------
    @property
    @abstractmethod
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """``(width, height)`` of each level, level 0 first."""

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """Downsample of each level relative to level 0 (mean of the two axes)."""
        w0, h0 = self.level_dimensions[0]
        return tuple((w0 / w + h0 / h) / 2 for w, h in self.level_dimensions)

    @property
    def vendor(self) -> str:
        return "unknown"

    @property
    def properties(self) -> dict[str, str]:
        """Raw metadata as strings (empty when the format has none)."""
        return {}

    @abstractmethod
    def _read(self, x: int, y: int, w: int, h: int, level: int) -> np.ndarray:
        """Read an in-bounds-or-not region; (x, y) level 0, (w, h) at ``level``."""

    # -- derived ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Slide id: the file name without its extension (see :func:`slide_name`)."""
        return slide_name(self.path)

    @property
    def dimensions(self) -> tuple[int, int]:
        """``(width, height)`` of level 0."""
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    def level_mpp(self, level: int) -> float:
        return self.mpp * self.level_downsamples[level]

    def best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample does not exceed ``downsample``.

        A level within :data:`LEVEL_TOLERANCE` of the target counts as equal, so a request
        that matches a level exactly is served from it without resizing.
        """
        best = 0
        for i, ds in enumerate(self.level_downsamples):
            if ds <= downsample * (1 + LEVEL_TOLERANCE):
                best = i if ds >= self.level_downsamples[best] else best
        return best

    def read_region(self, x: int, y: int, w: int, h: int, level: int = 0) -> np.ndarray:
        """Read ``(h, w, 3)`` RGB uint8 pixels at ``level``; ``(x, y)`` in level-0 pixels.

        Areas outside the slide come back white (255), as OpenSlide renders them over a
        white background.

        Examples
        --------
        >>> from histoexpr.slide import ArraySlide
        >>> s = ArraySlide(np.zeros((64, 64, 3), np.uint8), mpp=0.5)
        >>> s.read_region(0, 0, 8, 4).shape
        (4, 8, 3)
        """
        if not 0 <= level < self.level_count:
            raise InputError(
                f"{self.path}: level {level} does not exist (the slide has {self.level_count})"
            )
        if w <= 0 or h <= 0:
            raise InputError(f"{self.path}: region size must be positive, got {w} x {h}")
        out = self._read(int(x), int(y), int(w), int(h), level)
        assert out.shape == (h, w, 3) and out.dtype == np.uint8, (out.shape, out.dtype)
        return out

    def read_at_mpp(self, x: int, y: int, size_px: int, mpp: float) -> np.ndarray:
        """Read a ``size_px`` square at ``mpp`` whose top-left corner is level-0 ``(x, y)``.

        The region covers ``size_px * mpp / self.mpp`` level-0 pixels. It is read from the
        coarsest level that is at least as fine as ``mpp`` and resized (area averaging), so
        the result equals reading level 0 and resizing, at a fraction of the cost; when a
        level's mpp equals ``mpp`` it is returned without resampling.
        """
        if mpp <= 0:
            raise InputError(f"target mpp must be positive, got {mpp}")
        ds = mpp / self.mpp
        level = self.best_level_for_downsample(ds)
        lds = self.level_downsamples[level]
        span0 = size_px * ds  # level-0 pixels covered
        n = max(1, round(span0 / lds))
        if abs(n - span0 / lds) > 1e-6 * span0:
            n = math.ceil(span0 / lds)  # read whole pixels; the resize absorbs the fraction
        region = self.read_region(x, y, n, n, level)
        return resize_rgb(region, (size_px, size_px))

    def read_at_mpp_batch(
        self, coords: np.ndarray, size_px: int, mpp: float, *, workers: int | None = None
    ) -> np.ndarray:
        """:meth:`read_at_mpp` for every row of an ``(N, 2)`` array; returns ``(N, s, s, 3)``.

        Tiles are read by ``workers`` threads (default: up to 4, one per core). Decoding and
        resizing release the GIL in OpenSlide, libtiff/imagecodecs and PIL, so this scales
        with cores; ``workers=1`` reads sequentially.
        """
        c = np.asarray(coords, np.int64).reshape(-1, 2)
        out = np.empty((len(c), size_px, size_px, 3), np.uint8)
        n_workers = default_read_workers() if workers is None else max(1, int(workers))

        def one(i: int) -> None:
            out[i] = self.read_at_mpp(int(c[i, 0]), int(c[i, 1]), size_px, mpp)

        if n_workers == 1 or len(c) < 2 * n_workers:
            for i in range(len(c)):
                one(i)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(n_workers) as ex:
                list(ex.map(one, range(len(c))))
        return out

    def thumbnail(self, max_size: int = 1024) -> np.ndarray:
        """The whole slide, scaled so its longer side is at most ``max_size`` pixels.

        Read from the coarsest pyramid level fine enough, in strips of at most
        :data:`THUMBNAIL_STRIP_PIXELS` (each strip shrunk to its rows of the thumbnail by
        area averaging), so peak memory does not grow with the slide: a single-level
        100,000 x 80,000 px slide is read 200 rows at a time, never as one 24 GB array.
        Thumbnails are made at least :data:`THUMBNAIL_BUILD` pixels across and the largest
        is kept; a smaller one is shrunk from it (tissue detection and the QC image read
        the slide once).

        Examples
        --------
        >>> from histoexpr.slide import ArraySlide
        >>> s = ArraySlide(np.zeros((300, 500, 3), np.uint8), mpp=0.5)
        >>> s.thumbnail(100).shape
        (60, 100, 3)
        """
        w0, h0 = self.dimensions
        scale = max(w0, h0) / max_size
        if scale <= 1:
            return self.read_region(0, 0, w0, h0, 0)
        tw, th = max(1, round(w0 / scale)), max(1, round(h0 / scale))
        kept = self.__dict__.get("_thumbnail")
        if kept is None or kept.shape[1] < tw or kept.shape[0] < th:
            # made at least THUMBNAIL_BUILD across: the tissue mask's smaller thumbnail
            # and the QC image's then come from one read of the slide
            build = max(w0, h0) / max(max_size, THUMBNAIL_BUILD)
            bw, bh = max(1, round(w0 / build)), max(1, round(h0 / build))
            if build <= 1:
                kept = self.read_region(0, 0, w0, h0, 0)
            else:
                kept = self._streamed_thumbnail(self.best_level_for_downsample(build), bw, bh)
            self.__dict__["_thumbnail"] = kept
        return kept if kept.shape[:2] == (th, tw) else resize_rgb(kept, (tw, th))

    def _streamed_thumbnail(self, level: int, tw: int, th: int) -> np.ndarray:
        """Level ``level`` shrunk to ``(th, tw)``, read in strips of whole rows."""
        lw, lh = self.level_dimensions[level]
        if lw * lh <= THUMBNAIL_STRIP_PIXELS:
            return resize_rgb(self.read_region(0, 0, lw, lh, level), (tw, th))
        rows_per_out = lh / th  # level rows behind one thumbnail row
        out_rows = max(1, int(THUMBNAIL_STRIP_PIXELS // lw / rows_per_out))
        ds = self.level_downsamples[level]
        out = np.empty((th, tw, 3), np.uint8)
        from PIL import Image

        for o0 in range(0, th, out_rows):
            o1 = min(th, o0 + out_rows)
            top, bottom = o0 * rows_per_out, min(lh, o1 * rows_per_out)
            r0, r1 = math.floor(top), min(lh, max(math.ceil(bottom), math.floor(top) + 1))
            strip = Image.fromarray(self.read_region(0, round(r0 * ds), lw, r1 - r0, level))
            # the strip's exact share of the level (fractional rows): no seams between strips
            out[o0:o1] = np.asarray(strip.resize((tw, o1 - o0), Image.Resampling.BOX,
                                                 box=(0, top - r0, lw, bottom - r0)))
        return out

    def info(self) -> dict[str, object]:
        """A summary for ``histoexpr info``."""
        return {
            "path": str(self.path),
            "reader": self.reader,
            "vendor": self.vendor,
            "dimensions": list(self.dimensions),
            "mpp": round(self.mpp, 6),
            "level_count": self.level_count,
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "level_downsamples": [round(d, 4) for d in self.level_downsamples],
        }

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles (readers that hold none need not override)."""

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.dimensions
        return (
            f"<{type(self).__name__} {self.path.name!r} {w}x{h} levels={self.level_count} "
            f"mpp={self.mpp:.4g} reader={self.reader}>"
        )


def pad_region(
    src: np.ndarray, x: int, y: int, w: int, h: int, fill: int = 255
) -> np.ndarray:
    """Cut ``(x, y, w, h)`` (in ``src``'s pixels) out of ``src``, white outside its bounds."""
    H, W = src.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x0 == x and y0 == y and x1 == x + w and y1 == y + h:
        return np.ascontiguousarray(src[y0:y1, x0:x1, :3])
    out = np.full((h, w, 3), fill, np.uint8)
    if x1 > x0 and y1 > y0:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = src[y0:y1, x0:x1, :3]
    return out
