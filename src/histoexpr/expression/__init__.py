"""Expression-side readers: spot positions of spatial transcriptomics (legacy ST selection
tables, Visium tissue positions, generic CSV) and whole sections as one AnnData (legacy ST,
Visium Space Ranger outputs, HEST-style ``.h5ad``), joined into cohorts; bulk RNA-seq tables
(GDC STAR counts and FPKM-UQ, cBioPortal RSEM, GTEx GCT, plain CSV/TSV) as samples x genes;
built-in gene panels (gastric 4, hist2RNA 138, PAM50)."""

from __future__ import annotations

from .bulk import (
    BULK_READERS,
    log_transform,
    read_cbioportal_rsem,
    read_expression_table,
    read_gct,
    read_gdc_fpkm_uq,
    read_gdc_star_counts,
    strip_ensembl_version,
)
from .discover import read_cohort, read_sections
from .h5ad import read_h5ad
from .panels import PANEL_ALIASES, PANELS, list_panels, load_panel, panel_genes
from .section import SPATIAL_READERS, concat_sections, prefix_ids
from .sniff import read_expression, sniff_format
from .spots import estimate_mpp_from_spots, read_spots
from .st import read_her2st, read_legacy_st
from .transforms import GeneSelector, expressed_genes, normalise, spot_mask
from .visium import read_10x_h5, read_10x_mtx, read_visium

__all__ = [
    "BULK_READERS",
    "PANELS",
    "PANEL_ALIASES",
    "SPATIAL_READERS",
    "GeneSelector",
    "concat_sections",
    "estimate_mpp_from_spots",
    "expressed_genes",
    "list_panels",
    "load_panel",
    "log_transform",
    "normalise",
    "panel_genes",
    "prefix_ids",
    "read_10x_h5",
    "read_10x_mtx",
    "read_cbioportal_rsem",
    "read_cohort",
    "read_expression",
    "read_expression_table",
    "read_gct",
    "read_gdc_fpkm_uq",
    "read_gdc_star_counts",
    "read_h5ad",
    "read_her2st",
    "read_legacy_st",
    "read_sections",
    "read_spots",
    "read_visium",
    "sniff_format",
    "spot_mask",
    "strip_ensembl_version",
]
