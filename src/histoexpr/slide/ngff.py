"""OME-Zarr (NGFF) multiscale images as slides: the H&E of a SpatialData store.

A SpatialData store keeps each image as an OME-NGFF multiscale group,
``store.zarr/images/<name>/`` with one zarr array per level (``0``, ``1``, ...; axes
``c, y, x``). Any such group opens as a slide, read lazily chunk by chunk with zarr (the
``spatialdata`` package is not needed to read pixels):

- ``store.zarr/images/he`` — that image;
- ``store.zarr`` — the store's only image (a store with several names them all).

Pixels must be 8-bit RGB(A) or grey, as an H&E is; other images (16-bit fluorescence,
float) are refused with a message that says so. NGFF records no microns per pixel unless
its ``x`` axis has a length unit and the first level's scale is in it; otherwise the pixel
size comes from ``mpp`` (``--slide-mpp``, a section spec's ``mpp``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SlideError
from .base import Slide, resolve_mpp

logger = logging.getLogger(__name__)

__all__ = ["NGFFSlide", "ngff_images", "ngff_mpp"]

#: NGFF length units, in micrometres
_UNITS_UM = {"micrometer": 1.0, "micron": 1.0, "nanometer": 1e-3, "millimeter": 1e3}


def _attrs(group: Path) -> dict[str, Any] | None:
    """A zarr group's attributes read from its JSON (v3 ``zarr.json`` or v2 ``.zattrs``)."""
    try:
        if (group / "zarr.json").is_file():
            meta = json.loads((group / "zarr.json").read_text())
            return meta.get("attributes", {}) if meta.get("node_type") == "group" else None
        if (group / ".zattrs").is_file():
            return json.loads((group / ".zattrs").read_text())
    except (OSError, ValueError):
        return None
    return None


def _multiscales(attrs: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    if not attrs:
        return None
    ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    return ms if isinstance(ms, list) and ms else None


def ngff_images(path: str | Path) -> list[Path]:
    """The multiscale image groups ``path`` stands for: itself when it is one, else the
    ``images/<name>`` groups of a SpatialData store (sorted); ``[]`` for anything else."""
    p = Path(path)
    if not p.is_dir():
        return []
    if _multiscales(_attrs(p)):
        return [p]
    images = p / "images"
    if images.is_dir():
        return sorted(g for g in images.iterdir() if g.is_dir() and _multiscales(_attrs(g)))
    return []


def _axis_names(ms: dict[str, Any]) -> list[str]:
    axes = ms.get("axes") or ["c", "y", "x"]
    return [a["name"] if isinstance(a, dict) else str(a) for a in axes]


def _file_mpp(ms: dict[str, Any]) -> float | None:
    """µm per pixel from the ``x`` axis unit and the first level's scale, when both exist."""
    axes = ms.get("axes") or []
    names = _axis_names(ms)
    if "x" not in names:
        return None
    ax = axes[names.index("x")] if axes else {}
    unit = ax.get("unit") if isinstance(ax, dict) else None
    if unit not in _UNITS_UM:
        return None
    for t in (ms.get("datasets") or [{}])[0].get("coordinateTransformations", []):
        if t.get("type") == "scale" and len(t.get("scale", [])) == len(names):
            return float(t["scale"][names.index("x")]) * _UNITS_UM[unit]
    return None


def ngff_mpp(group: str | Path) -> float | None:
    """µm per pixel an OME-Zarr image records (axis unit and level-0 scale), else ``None``."""
    ms = _multiscales(_attrs(Path(group)))
    return _file_mpp(ms[0]) if ms else None


class NGFFSlide(Slide):
    """An OME-Zarr multiscale image (a SpatialData image element) read as a slide.

    Examples
    --------
    >>> s = NGFFSlide("demo.zarr/images/he", mpp=0.5)  # doctest: +SKIP
    >>> s.level_count, s.reader  # doctest: +SKIP
    (4, 'ngff')
    """

    reader = "ngff"

    def __init__(self, path: str | Path, *, mpp: float | None = None) -> None:
        import zarr

        path = Path(path)
        groups = ngff_images(path)
        if not groups:
            raise SlideError(f"{path}: not an OME-Zarr multiscale image or a SpatialData store "
                             "with one (images/<name>/ holding zarr levels)")
        if len(groups) > 1:
            raise SlideError(
                f"{path}: the store holds {len(groups)} images; name one: "
                + ", ".join(str(g) for g in groups[:6]))
        group = groups[0]
        ms = _multiscales(_attrs(group))[0]  # type: ignore[index]
        names = _axis_names(ms)
        if names[-2:] != ["y", "x"] or set(names) - {"c", "y", "x"}:
            raise SlideError(f"{group}: axes {names}; expected (c,) y, x: a 2-D image")
        try:
            root = zarr.open_group(str(group), mode="r")
            arrays = [root[d["path"]] for d in ms.get("datasets", [])]
        except Exception as e:  # zarr raises many kinds for a damaged store
            raise SlideError(f"{group}: cannot open the zarr levels ({e}); is the store "
                             "complete? write or copy it again") from e
        if not arrays:
            raise SlideError(f"{group}: the multiscales list no datasets (levels)")
        a0 = arrays[0]
        n_c = a0.shape[names.index("c")] if "c" in names else 1
        if a0.dtype != np.uint8 or n_c not in (1, 3, 4):
            raise SlideError(
                f"{group}: a {n_c}-channel {a0.dtype} image; an H&E slide is 8-bit RGB. "
                "Is this a fluorescence or label image? Pick the H&E image of the store")
        self._arrays = arrays
        self._channel_first = names[0] == "c"
        self._has_c = "c" in names
        super().__init__(group, mpp=resolve_mpp(_file_mpp(ms), mpp, group))
        # a store's only image is named after the store, not "he" or "image"
        self._name = path.name.removesuffix(".zarr") if group != path else None

    @staticmethod
    def can_open(path: Path) -> bool:
        return bool(ngff_images(path))

    @property
    def name(self) -> str:
        return self._name or super().name

    @property
    def vendor(self) -> str:
        return "ome-zarr"

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((int(a.shape[-1]), int(a.shape[-2])) for a in self._arrays)

    def _read(self, x: int, y: int, w: int, h: int, level: int) -> np.ndarray:
        ds = self.level_downsamples[level]
        lx, ly = round(x / ds), round(y / ds)
        W, H = self.level_dimensions[level]
        x0, y0, x1, y1 = max(lx, 0), max(ly, 0), min(lx + w, W), min(ly + h, H)
        if x1 <= x0 or y1 <= y0:
            return np.full((h, w, 3), 255, np.uint8)
        a = self._arrays[level]
        block = np.asarray(a[..., y0:y1, x0:x1])
        if self._has_c:
            block = np.moveaxis(block, 0, -1) if self._channel_first else block
        else:
            block = block[..., None]
        if block.shape[-1] == 1:
            block = np.repeat(block, 3, axis=-1)
        # the block sits at (x0 - lx, y0 - ly) of the request; the rest is white
        return _place(block[..., :3], x0 - lx, y0 - ly, w, h)

    def close(self) -> None:
        self._arrays = []


def _place(block: np.ndarray, dx: int, dy: int, w: int, h: int) -> np.ndarray:
    """``block`` put at ``(dx, dy)`` of a white ``(h, w, 3)`` canvas (as is when it fills it)."""
    if dx == 0 and dy == 0 and block.shape[:2] == (h, w):
        return np.ascontiguousarray(block)
    out = np.full((h, w, 3), 255, np.uint8)
    out[dy:dy + block.shape[0], dx:dx + block.shape[1]] = block
    return out
