"""The spatial workflow from Python, read like the command line (issue 22, item 6): each
function takes what the command takes and returns data, not a folder (the scanpy habit)::

    import histoexpr, histoexpr.st as hst
    oof = hst.fit("her2st/", out="runs/st", encoder="uni", genes="top250")
    oof                        # held-out (test-fold) predictions: AnnData spots x genes
    new = hst.predict("runs/st", "new.jpg", "new_spots.tsv")
    tiles = histoexpr.predict_slide("slide.svs", "runs/st", out="maps/")
    sdata = histoexpr.predict_slide("slide.svs", "runs/st", out="maps/",
                                    returns="spatialdata")   # the slide, tiles, predictions

``returns="spatialdata"`` (on all three) writes the command's SpatialData store too and
returns it opened with ``spatialdata.read_zarr``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["fit", "predict", "returned", "wants_store"]

RETURNS = ("anndata", "spatialdata")


def wants_store(returns: str) -> bool:
    """Whether ``returns`` asks for the SpatialData store (so it must be written); an
    unknown ``returns`` is an error."""
    from ..errors import InputError

    if returns not in RETURNS:
        raise InputError(f"returns must be one of {', '.join(RETURNS)}, not {returns!r}")
    return returns == "spatialdata"


def returned(returns: str, adata: Any, store: str | Path | None) -> Any:
    """What ``returns`` asks for: ``adata``, or the store at ``store`` opened."""
    if not wants_store(returns):
        return adata
    from .sdata_out import require_spatialdata

    return require_spatialdata().read_zarr(store)


def fit(data: str | Path | Sequence[str | Path] | Any, *, out: str | Path,
        overwrite: bool = False, maps: bool = False, returns: str = "anndata",
        **options: Any) -> Any:
    """``histoexpr st fit``: cross-validate a spot-level model beside its baselines.

    Parameters
    ----------
    data
        What ``--data`` takes (a her2st folder, Space Ranger outs, ``.h5ad`` files, a HEST
        folder or query, a JSON of section specs; one or several), or an in-memory
        AnnData in the data contract.
    out
        The run folder (resumed when it holds the same configuration).
    options
        ``st fit``'s options by their config names (``encoder``, ``model``, ``genes``,
        ``k``, ``split``, ``context``, ``scales``, ``baselines``, ``stain``, ...).

    Returns
    -------
    AnnData
        The main model's out-of-fold predictions (spots x genes; ``layers["measured"]``,
        ``obs["fold"]``, ``obsm["spatial"]``), with ``uns["run"]`` the run folder; or, with
        ``returns="spatialdata"``, ``RUN/predictions.zarr`` opened (sections' images, spots
        and this table).
    """
    import anndata as ad

    from ..config import STConfig
    from .fit import fit_run

    adata = data if isinstance(data, ad.AnnData) else None
    paths = [] if adata is not None else (
        [str(data)] if isinstance(data, str | Path) else [str(p) for p in data])
    cfg = STConfig.resolve(**({"data": paths} if paths else {}), **options)
    run = fit_run(cfg, out, overwrite=overwrite, maps=maps, adata=adata,
                  spatialdata=wants_store(returns))
    oof = ad.read_h5ad(run.predictions)
    oof.uns["run"] = str(run.path.resolve())
    return returned(returns, oof, run.path / "predictions.zarr")


def predict(model: str | Path, image: str | Path, spots: str | Path, *,
            returns: str = "anndata", **options: Any) -> Any:
    """``histoexpr st predict``: every spot of a section, with a run folder or model file;
    returns the AnnData (spots x genes, intervals in ``layers`` where the run has them), or
    with ``returns="spatialdata"`` the section's store (``OUT/<section>.zarr``) opened.
    ``options``: ``out``, ``mpp``, ``section``, ``genes``, ``counts``."""
    from .. import _keys as K
    from ..runs import files
    from .predict import predict_section

    res = predict_section(model, image, spots, spatialdata=wants_store(returns), **options)
    store = Path(res.uns["out"]) / files.PREDICT_ZARR.format(
        section=str(res.obs[K.SLIDE_ID].iloc[0]))
    return returned(returns, res, store)
