"""Expression-side readers: spot positions of spatial transcriptomics (legacy ST selection
tables, Visium tissue positions, generic CSV) and whole sections as one AnnData (legacy ST,
Visium Space Ranger outputs, HEST-style ``.h5ad``), joined into cohorts."""

from __future__ import annotations

from .h5ad import read_h5ad
from .spots import estimate_mpp_from_spots, read_spots
from .st import (
    SPATIAL_READERS,
    concat_sections,
    read_her2st,
    read_legacy_st,
    read_sections,
)
from .transforms import GeneSelector, expressed_genes, normalise, spot_mask
from .visium import read_10x_h5, read_10x_mtx, read_visium

__all__ = [
    "SPATIAL_READERS",
    "GeneSelector",
    "concat_sections",
    "estimate_mpp_from_spots",
    "expressed_genes",
    "normalise",
    "read_10x_h5",
    "read_10x_mtx",
    "read_h5ad",
    "read_her2st",
    "read_legacy_st",
    "read_sections",
    "read_spots",
    "read_visium",
    "spot_mask",
]
