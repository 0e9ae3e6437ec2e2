"""Figures: tiling QC overlays, spatial expression maps and prediction scatter plots.

matplotlib is imported by the functions that draw, not when this package is imported.
"""

from __future__ import annotations

from .qc import qc_image, save_png
from .spatial import (
    estimate_spot_diameter,
    expression_maps,
    prediction_scatter,
    save_figure,
    section_image,
    spot_scatter,
)

__all__ = [
    "estimate_spot_diameter",
    "expression_maps",
    "prediction_scatter",
    "qc_image",
    "save_figure",
    "save_png",
    "section_image",
    "spot_scatter",
]
