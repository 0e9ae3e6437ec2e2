"""``histoexpr bulk predict``: expression of new slides from a run's final model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..runs import BulkRunFolder, files

__all__ = ["final_model", "final_run", "predict_bulk", "slide_patient"]

logger = logging.getLogger(__name__)


def final_run(run: str | Path) -> tuple[BulkRunFolder, dict, Any]:
    """``(run folder, final/model.json, BulkConfig)`` of a bulk run that has a final model.

    Raises :class:`~histoexpr.errors.InputError` when it has none."""
    from ..config import BulkConfig
    from ..runs.portable import is_model_file, open_model

    if is_model_file(run):  # a `histoexpr export-model` file: no unpickling
        folder, model = open_model(run)
        rf = BulkRunFolder(folder)
        _LOADED[str(rf.final_model)] = model
    else:
        rf = BulkRunFolder(run)
        if not rf.final_model.is_file():
            raise InputError(f"{rf.path}: no final model (final/model.joblib); rerun "
                             "`histoexpr bulk fit` without --no-refit")
    try:
        cfg = BulkConfig.from_dict(rf.read_json(rf.config))
    except (InputError, TypeError) as e:
        raise InputError(f"{run}: not a bulk run ({e}); `bulk predict` needs the folder "
                         "(or model file) of a `histoexpr bulk fit` run") from e
    return rf, rf.read_json(rf.final_info), cfg


#: models of model files, by their unpacked run folder's final/model.joblib path
_LOADED: dict[str, Any] = {}


def final_model(rf: BulkRunFolder) -> Any:
    """The final model of a run folder from :func:`final_run` (a model file's from its
    tensors, a run's from final/model.joblib)."""
    import joblib

    model = _LOADED.get(str(rf.final_model))
    return model if model is not None else joblib.load(rf.final_model)


def slide_patient(name: str, given: str = "") -> str:
    """The patient of a slide: ``given`` when there is one, else the TCGA barcode's
    patient in the slide name, else ``""``."""
    from ..barcodes import try_parse_barcode

    if given:
        return given
    bc = try_parse_barcode(name)
    return bc.patient if bc is not None else ""


def predict_bulk(
    run: str | Path,
    features: str | Path,
    *,
    out: str | Path | None = None,
    slides: list[str] | None = None,
    heatmaps: str | Path | None = None,
    slides_dir: str | Path | None = None,
    seed: int | None = None,
) -> pd.DataFrame:
    """Predict every slide of a feature folder with the final model of ``run``.

    The bags are read with the run's tile choice (``select``, ``n_tiles``; a ``top`` run
    needs ``heatmaps`` for the new slides) and must come from the encoder the model was
    trained on. Returns slides x genes in the run's units (``transform``, e.g. log1p) with a
    ``patient`` column (TCGA patient barcode when the name has one), and writes it as CSV to
    ``out`` (default ``RUN/predict/predictions.csv``) beside ``predictions.json``.

    Raises
    ------
    InputError
        The run has no final model; features from another encoder or of another size.
    """

    from ..atomic import write_csv, write_json
    from ..features.bags import load_bags

    rf, info, cfg = final_run(run)
    bagset = load_bags(features, slides, select=info["select"], n=info["n_tiles"],
                       heatmaps=heatmaps or cfg.heatmaps, seed=cfg.seed if seed is None else seed,
                       encoder=info["encoder"])
    dims = {b.dim for b in bagset.bags}
    if dims != {info["n_features"]}:
        raise InputError(f"{features}: features of size {sorted(dims)}, the model expects "
                         f"{info['n_features']}; embed with encoder {info['encoder']!r}")
    model = final_model(rf)
    bags = bagset.bags
    X = bags
    if info.get("input_kind") == "patch_bags":
        from ..features.bags import read_bag_patches

        X = [read_bag_patches(b, slides_dir=slides_dir or cfg.slides_dir) for b in bags]
    pred = np.asarray(model.predict(X), np.float32)
    names = [b.slide for b in bags]
    df = pd.DataFrame(pred, index=pd.Index(names, name="slide"), columns=info["genes"])
    df.insert(0, "patient", [slide_patient(s) for s in names])
    if out is None:
        from ..runs.portable import is_model_file, portable_output

        out = ((portable_output(run) if is_model_file(run) else rf.path / files.PREDICT)
               / files.PREDICTIONS_CSV)
    path = Path(out)
    write_csv(path, df)
    write_json(path.with_suffix(".json"), {
        "run": str(rf.path.resolve()), "features": str(features), "model": info["model"],
        "encoder": info["encoder"], "units": info["transform"], "n_slides": len(df),
        "skipped": bagset.skipped})
    logger.info("predicted %d slides x %d genes -> %s", len(df), len(info["genes"]), path)
    return df
