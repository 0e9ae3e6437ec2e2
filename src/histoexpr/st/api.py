"""The spatial workflow from Python, read like the command line (issue 22, item 6): each
function takes what the command takes and returns data, not a folder (the scanpy habit)::

    import histoexpr, histoexpr.st as hst
    oof = hst.fit("her2st/", out="runs/st", encoder="uni", genes="top250")
    oof                        # held-out (test-fold) predictions: AnnData spots x genes
    new = hst.predict("runs/st", "new.jpg", "new_spots.tsv")
    tiles = histoexpr.predict_slide("slide.svs", "runs/st", out="maps/")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["fit", "predict"]


def fit(data: str | Path | Sequence[str | Path] | Any, *, out: str | Path,
        overwrite: bool = False, maps: bool = False, **options: Any) -> Any:
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
        ``obs["fold"]``, ``obsm["spatial"]``), with ``uns["run"]`` the run folder.
    """
    import anndata as ad

    from ..config import STConfig
    from .fit import fit_run

    adata = data if isinstance(data, ad.AnnData) else None
    paths = [] if adata is not None else (
        [str(data)] if isinstance(data, str | Path) else [str(p) for p in data])
    cfg = STConfig.resolve(**({"data": paths} if paths else {}), **options)
    run = fit_run(cfg, out, overwrite=overwrite, maps=maps, adata=adata)
    oof = ad.read_h5ad(run.predictions)
    oof.uns["run"] = str(run.path.resolve())
    return oof


def predict(model: str | Path, image: str | Path, spots: str | Path, **options: Any) -> Any:
    """``histoexpr st predict``: every spot of a section, with a run folder or model file;
    returns the AnnData (spots x genes, intervals in ``layers`` where the run has them).
    ``options``: ``out``, ``mpp``, ``section``, ``genes``, ``counts``."""
    from .predict import predict_section

    return predict_section(model, image, spots, **options)
