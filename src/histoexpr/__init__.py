"""histoexpr: predict gene expression from H&E histology.

The pipeline runs slide → tissue → tiles → stain → features → (join expression) → model →
metrics → plots/report. Heavy dependencies are imported by the stages that need them, not
here.

Examples
--------
>>> import histoexpr
>>> slide = histoexpr.open_slide("slide.svs")  # doctest: +SKIP
"""

from __future__ import annotations

from .errors import (
    CoordinateError,
    HistoexprError,
    InputError,
    MppMissingError,
    SlideError,
    TissueError,
    UnknownNameError,
)
from .slide import open_slide
from .tiling import TileSpec, load_coords, save_coords, tile_slide
from .tissue import detect_tissue, tissue_mask

__version__ = "0.1.0"

__all__ = [
    "CoordinateError",
    "HistoexprError",
    "InputError",
    "MppMissingError",
    "SlideError",
    "TileSpec",
    "TissueError",
    "UnknownNameError",
    "__version__",
    "detect_tissue",
    "load_coords",
    "open_slide",
    "save_coords",
    "tile_slide",
    "tissue_mask",
]
