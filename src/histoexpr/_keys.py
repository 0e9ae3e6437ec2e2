"""Canonical names of the data contract: AnnData obs columns, obsm/uns keys, HDF5 datasets
and attributes. Every stage imports its keys from here so writers and readers cannot drift.
"""

from __future__ import annotations

# obs columns (level-0 pixel coordinates of the tile/spot *top-left* corner unless stated)
X = "x"
Y = "y"
SLIDE_ID = "slide_id"
PATIENT_ID = "patient_id"
SPOT_ID = "spot_id"
IN_TISSUE = "in_tissue"
# spatial transcriptomics: one row per spot; x, y are the spot *centre* in full-resolution
# image pixels; a section is a slide (SLIDE_ID holds the section id)
ARRAY_ROW = "array_row"
ARRAY_COL = "array_col"
TOTAL_COUNTS = "total_counts"

# obsm: positions in pixels of the image the rows came with, as (x, y) columns (the
# scanpy/squidpy convention): spot centres, and tile *centres* (obs x, y hold tiles' corners)
OBSM_SPATIAL = "spatial"

# layers
LAYER_COUNTS = "counts"  # raw counts, kept beside the normalised X

# HDF5 coordinate store (CLAM/TRIDENT layout): one file per slide
H5_COORDS = "coords"  # (N, 2) int64, level-0 top-left x, y
H5_FEATURES = "features"
ATTR_PATCH_SIZE = "patch_size"  # side in pixels at the target mpp
ATTR_PATCH_SIZE_LEVEL0 = "patch_size_level0"  # side in level-0 pixels
ATTR_PATCH_LEVEL = "patch_level"  # pyramid level read before resizing
ATTR_MPP = "mpp"  # target microns per pixel
ATTR_LEVEL0_MPP = "level0_mpp"
ATTR_STRIDE = "stride_px"
ATTR_SAMPLER = "sampler"
ATTR_SLIDE_PATH = "slide_path"
ATTR_SLIDE_SHA256 = "slide_sha256"
ATTR_NAME = "name"

# uns keys
UNS_TILE_SPEC = "tile_spec"
UNS_STAIN = "stain"
UNS_ENCODER = "encoder"
#: per-section metadata: {section_id: {"image_path", "mpp", "platform", "source", ...}}
UNS_SECTIONS = "sections"
#: genes a reader or the section join removed -> why (read by the gene checks, then dropped)
UNS_REMOVED_GENES = "removed_genes"
