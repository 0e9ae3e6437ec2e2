"""``histoexpr tma predict``: a bulk run's final model on the cores of a tissue microarray,
per core and per patient (hist2RNA's external TMA cohort, seed 001, 3.3).

The TMA slide is tiled and embedded once as a whole (``histoexpr tile``, ``histoexpr
embed``); :func:`~histoexpr.tiling.tma.dearray` finds its cores and
:func:`~histoexpr.tiling.tma.core_bags` splits the tile features into one bag per core.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..runs import BulkRunFolder

__all__ = ["predict_tma"]

logger = logging.getLogger(__name__)


def predict_tma(run: str | Path, features: str | Path, cores: pd.DataFrame | str | Path, *,
                core_map: dict[str, str] | str | Path | None = None,
                out: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predict every core of a TMA slide with ``run``'s final model.

    Returns ``(per core, per patient)``: cores x genes with ``core`` and ``patient`` columns,
    and the mean over each patient's cores (with ``n_cores``). Both are written as CSV to
    ``out`` (default ``RUN/predict/``) as ``tma_cores.csv`` and ``tma_patients.csv``.
    """
    import joblib

    from ..atomic import write_csv
    from ..tiling.tma import core_bags, read_core_map

    rf = BulkRunFolder(run)
    if not rf.final_model.is_file():
        raise InputError(f"{rf.path}: no final model (final/model.joblib); rerun `histoexpr "
                         "bulk fit` without --no-refit")
    info = rf.read_json(rf.final_info)
    if info.get("input_kind") == "patch_bags":
        raise InputError(f"{rf.path}: model {info['model']!r} reads image patches; predict a "
                         "TMA with a model on tile features")
    table = cores if isinstance(cores, pd.DataFrame) else pd.read_csv(cores)
    mapping = read_core_map(core_map) if isinstance(core_map, (str, Path)) else core_map
    bags = core_bags(features, table, core_map=mapping)
    enc = {b.encoder for b in bags} - {None}
    if info.get("encoder") and enc and enc != {info["encoder"]}:
        raise InputError(f"{features}: features from encoder {sorted(enc)[0]!r}, the model was "
                         f"trained on {info['encoder']!r}; embed the TMA with that encoder")
    if bags[0].dim != info["n_features"]:
        raise InputError(f"{features}: features of size {bags[0].dim}, the model expects "
                         f"{info['n_features']}")
    model = joblib.load(rf.final_model)
    pred = np.asarray(model.predict(bags), np.float32)
    per_core = pd.DataFrame(pred, columns=info["genes"])
    per_core.insert(0, "patient", [b.source or "" for b in bags])
    per_core.insert(0, "core", [b.slide.rsplit(":", 1)[-1] for b in bags])
    per_core.insert(2, "n_tiles", [len(b) for b in bags])
    known = per_core[per_core["patient"] != ""]
    per_patient = known.groupby("patient")[info["genes"]].mean()
    per_patient.insert(0, "n_cores", known.groupby("patient").size())
    if mapping is not None:
        missing = sorted(set(per_core["core"]) - set(mapping))
        if missing:
            logger.warning("%d core(s) not in the core map (e.g. %s): predicted, no patient",
                           len(missing), ", ".join(missing[:3]))
    folder = Path(out) if out is not None else rf.path / "predict"
    write_csv(folder / "tma_cores.csv", per_core, index=False)
    write_csv(folder / "tma_patients.csv", per_patient)
    logger.info("%d cores, %d patients predicted -> %s", len(per_core), len(per_patient), folder)
    return per_core, per_patient


