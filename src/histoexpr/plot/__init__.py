"""Figures: tiling QC overlays, spatial expression maps and prediction scatter plots, and the
figures of the downstream analyses (subtypes, survival, clinical associations, variance).

matplotlib is imported by the functions that draw, not when this package is imported. Every
figure is built on an Agg canvas (:func:`new_figure`), never with pyplot.
"""

from __future__ import annotations

from .clinical import correlation_figure, violin_figure
from .figures import new_figure
from .qc import qc_image, save_png
from .spatial import (
    estimate_spot_diameter,
    expression_maps,
    prediction_scatter,
    save_figure,
    section_image,
    spot_scatter,
)
from .subtype import confusion_figure, roc_figure
from .survival import forest_figure, km_figure
from .uncertainty import interval_maps
from .variance import association_heatmap, shared_variance_bars

__all__ = [
    "association_heatmap",
    "confusion_figure",
    "correlation_figure",
    "estimate_spot_diameter",
    "expression_maps",
    "forest_figure",
    "interval_maps",
    "km_figure",
    "new_figure",
    "prediction_scatter",
    "qc_image",
    "roc_figure",
    "save_figure",
    "save_png",
    "section_image",
    "shared_variance_bars",
    "spot_scatter",
    "violin_figure",
]
