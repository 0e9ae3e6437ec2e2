"""Expression-side readers. For now: spot positions of spatial transcriptomics
(legacy ST selection tables, Visium tissue positions, generic CSV)."""

from __future__ import annotations

from .spots import estimate_mpp_from_spots, read_spots

__all__ = ["estimate_mpp_from_spots", "read_spots"]
