"""Pyramidal whole-slide formats through OpenSlide (openslide-python + openslide-bin) and
tiffslide (pure Python, tifffile-based)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import SlideError
from .base import Slide, resolve_mpp
from .integrity import check_complete

logger = logging.getLogger(__name__)

__all__ = ["OpenSlideSlide", "TiffSlideSlide"]


def _float(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if f > 0 else None


def _metadata_mpp(props: dict, prefix: str) -> float | None:
    """Mean of ``<prefix>.mpp-x`` and ``-y`` (either alone when only one is set)."""
    mx, my = _float(props.get(f"{prefix}.mpp-x")), _float(props.get(f"{prefix}.mpp-y"))
    return (mx + my) / 2 if mx and my else (mx or my)


def _recognised(path: Path, probe: Callable[[Path], bool]) -> bool:
    """Whether ``probe`` takes the file ``path`` for its format; a folder, or a probe that
    raises, is a no (the next reader is asked)."""
    if path.is_dir():
        return False
    try:
        return probe(path)
    except Exception:
        return False


def _blend_rgba(rgba: np.ndarray) -> np.ndarray:
    """RGBA → RGB over a white background (OpenSlide's transparent outside-slide areas)."""
    if rgba.shape[2] == 3:
        return rgba
    rgb, a = rgba[..., :3], rgba[..., 3:4]
    if a.min() == 255:
        return np.ascontiguousarray(rgb)
    af = a.astype(np.float32) / 255.0
    return (rgb * af + 255.0 * (1.0 - af) + 0.5).astype(np.uint8)


class OpenSlideSlide(Slide):
    """Any format OpenSlide reads: Aperio .svs, Hamamatsu, Leica, MIRAX, generic tiled TIFF."""

    reader = "openslide"

    def __init__(self, path: str | Path, *, mpp: float | None = None) -> None:
        import openslide

        path = Path(path)
        check_complete(path)  # a cut file gets the one "incomplete" message, not OpenSlide's
        try:
            self._osr = openslide.OpenSlide(str(path))
        except openslide.OpenSlideError as e:
            raise SlideError(f"{path}: OpenSlide cannot read it ({e})") from e
        found = _metadata_mpp(self._osr.properties, "openslide")
        super().__init__(path, mpp=resolve_mpp(found, mpp, path))

    @staticmethod
    def can_open(path: Path) -> bool:
        import openslide

        return _recognised(path, lambda p: openslide.OpenSlide.detect_format(str(p)) is not None)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple(self._osr.level_dimensions)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return tuple(float(d) for d in self._osr.level_downsamples)

    @property
    def vendor(self) -> str:
        return str(self._osr.properties.get("openslide.vendor", "unknown"))

    @property
    def properties(self) -> dict[str, str]:
        return dict(self._osr.properties)

    def _read(self, x: int, y: int, w: int, h: int, level: int) -> np.ndarray:
        import openslide

        try:
            img = self._osr.read_region((x, y), level, (w, h))
        except openslide.OpenSlideError as e:
            # OpenSlide refuses every call on a handle after one error: a fresh handle
            # keeps the slide usable for its other regions (a damaged tile is skipped)
            try:
                self._osr = openslide.OpenSlide(str(self.path))
            except openslide.OpenSlideError:
                pass
            raise SlideError(
                f"{self.path}: reading ({x}, {y}) {w}x{h} at level {level} failed ({e}); "
                "the file may be damaged: re-download it"
            ) from e
        return _blend_rgba(np.asarray(img))

    def close(self) -> None:
        self._osr.close()


class TiffSlideSlide(Slide):
    """TIFF-based slides through tiffslide, for files OpenSlide does not take."""

    reader = "tiffslide"

    def __init__(self, path: str | Path, *, mpp: float | None = None) -> None:
        import tiffslide

        path = Path(path)
        check_complete(path)
        ts = None
        try:
            ts = tiffslide.TiffSlide(path)
            dims = ts.level_dimensions
            self._ts = ts
        except Exception as e:
            if ts is not None:
                ts.close()
            raise SlideError(
                f"{path}: tiffslide cannot read it ({type(e).__name__}: {e})"
            ) from e
        found = _metadata_mpp(self._ts.properties, "tiffslide")
        self._dims = tuple((int(w), int(h)) for w, h in dims)
        super().__init__(path, mpp=resolve_mpp(found, mpp, path))

    @staticmethod
    def can_open(path: Path) -> bool:
        import tifffile

        def opens(p: Path) -> bool:
            with tifffile.TiffFile(p):
                return True

        return _recognised(path, opens)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return self._dims

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return tuple(float(d) for d in self._ts.level_downsamples)

    @property
    def vendor(self) -> str:
        return str(self._ts.properties.get("tiffslide.vendor") or "generic-tiff")

    @property
    def properties(self) -> dict[str, str]:
        return {k: str(v) for k, v in self._ts.properties.items()}

    def _read(self, x: int, y: int, w: int, h: int, level: int) -> np.ndarray:
        # read the in-bounds part ourselves so outside-slide areas are white, as in OpenSlide
        ds = self.level_downsamples[level]
        lw, lh = self._dims[level]
        lx, ly = round(x / ds), round(y / ds)
        x0, y0, x1, y1 = max(lx, 0), max(ly, 0), min(lx + w, lw), min(ly + h, lh)
        out = np.full((h, w, 3), 255, np.uint8)
        if x1 <= x0 or y1 <= y0:
            return out
        try:
            arr = self._ts.read_region(
                (round(x0 * ds), round(y0 * ds)), level, (x1 - x0, y1 - y0), as_array=True
            )
        except Exception as e:
            raise SlideError(
                f"{self.path}: reading ({x}, {y}) {w}x{h} at level {level} failed ({e}); "
                "the file may be damaged: re-download it"
            ) from e
        arr = np.asarray(arr)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        out[y0 - ly : y1 - ly, x0 - lx : x1 - lx] = _blend_rgba(arr.astype(np.uint8))
        return out

    def close(self) -> None:
        self._ts.close()
