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


def predict_slide(slide, model, *, out, returns="anndata", **options):
    """``histoexpr predict-slide`` from Python: tiles x genes of a whole slide (AnnData;
    ``uns`` says where the maps, overlays and QuPath GeoJSON were written). ``model`` is an
    ``st fit`` run folder or an ``export-model`` file; ``options`` are the command's
    (``genes``, ``n_maps``, ``device``, ``batch_size``, ``features``, ``map_mpp``,
    ``spatialdata_mpp``, ...). ``returns="spatialdata"`` also writes ``OUT/<slide>.zarr``
    and returns it as a SpatialData object (the slide, its tiles, the predictions)."""
    from .st.api import returned, wants_store
    from .st.predict_slide import predict_slide as _predict_slide

    res = _predict_slide(slide, model, out=out, quiet=options.pop("quiet", True),
                         spatialdata=wants_store(returns) or options.pop("spatialdata", False),
                         **options)
    res.adata.uns["files"] = {"h5ad": str(res.h5ad), "geojson": str(res.geojson),
                              "maps": [str(p) for p in res.maps],
                              "overlays": [str(p) for p in res.overlays],
                              "spatialdata": str(res.spatialdata) if res.spatialdata else None}
    return returned(returns, res.adata, res.spatialdata)


def export_model(run, path):
    """``histoexpr export-model``: a run's final model as one portable file."""
    from .runs.portable import export_model as _export

    return _export(run, path)


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
    "export_model",
    "load_coords",
    "open_slide",
    "predict_slide",
    "save_coords",
    "tile_slide",
    "tissue_mask",
]
