"""The tile specification: how big a tile is, at what pixel size, how far apart."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import InputError

__all__ = ["TileSpec"]


@dataclass(frozen=True)
class TileSpec:
    """A square tile of ``size_px`` pixels at ``mpp`` µm/px, placed every ``stride_px``.

    ``stride_px`` defaults to ``size_px`` (no overlap). The physical side is
    ``size_px * mpp`` µm, e.g. 224 px at 0.5 µm/px = 112 µm.

    Examples
    --------
    >>> spec = TileSpec(224, 0.5)
    >>> spec.size_um, spec.size_level0(0.25), spec.name
    (112.0, 448.0, '224px_0.5mpp')
    """

    size_px: int
    mpp: float
    stride_px: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.size_px, int) and self.size_px > 0):
            raise InputError(f"tile size must be a positive integer, got {self.size_px!r}")
        if not (self.mpp > 0 and math.isfinite(self.mpp)):
            raise InputError(f"tile mpp must be a positive number, got {self.mpp!r}")
        if self.stride_px is not None and not (
            isinstance(self.stride_px, int) and self.stride_px > 0
        ):
            raise InputError(f"stride must be a positive integer, got {self.stride_px!r}")

    @property
    def stride(self) -> int:
        return self.size_px if self.stride_px is None else self.stride_px

    @property
    def size_um(self) -> float:
        return self.size_px * self.mpp

    def size_level0(self, slide_mpp: float) -> float:
        """Side of the tile in level-0 pixels of a slide with ``slide_mpp``."""
        return self.size_px * self.mpp / slide_mpp

    def stride_level0(self, slide_mpp: float) -> float:
        return self.stride * self.mpp / slide_mpp

    @property
    def name(self) -> str:
        s = f"{self.size_px}px_{self.mpp:g}mpp"
        return s if self.stride == self.size_px else f"{s}_stride{self.stride}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_um(cls, size_um: float, *, size_px: int = 224) -> TileSpec:
        """A spec covering ``size_um`` microns with ``size_px`` pixels (BrST-Net style)."""
        return cls(size_px, size_um / size_px)
