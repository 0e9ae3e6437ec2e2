"""Figures: QC overlays now; spatial expression maps and summary plots later."""

from __future__ import annotations

from .qc import qc_image, save_png

__all__ = ["qc_image", "save_png"]
