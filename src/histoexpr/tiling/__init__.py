"""Tiles: specs, coordinate samplers, pixel filters, the per-slide pipeline and the HDF5
coordinate store."""

from __future__ import annotations

from .filters import KMeansPatchFilter, patch_colour_stats, white_filter, white_fraction
from .pipeline import FILTERS, TileResult, read_filter_tiles, tile_slide
from .samplers import SAMPLERS, grid_coords, heatmap_coords, spot_coords
from .spec import TileSpec
from .store import load_coords, save_coords

__all__ = [
    "FILTERS",
    "SAMPLERS",
    "KMeansPatchFilter",
    "TileResult",
    "TileSpec",
    "grid_coords",
    "heatmap_coords",
    "load_coords",
    "patch_colour_stats",
    "read_filter_tiles",
    "save_coords",
    "spot_coords",
    "tile_slide",
    "white_filter",
    "white_fraction",
]
