"""``histoexpr st predict``: expression of a new section (image + spot positions, no
counts) from a fitted run, as an AnnData and map PNGs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .. import _keys as K
from ..atomic import atomic_path
from ..errors import InputError
from ..runs import RunFolder, files, write_json

logger = logging.getLogger(__name__)

__all__ = ["best_genes", "load_spot_model", "predict_section"]


def _spots_adata(image: Path, spots: Path, *, mpp: float | None, section: str) -> AnnData:
    """A counts-free AnnData of the spots of one section (positions only)."""
    import anndata as ad

    from ..expression import estimate_mpp_from_spots, read_spots
    from ..expression.section import check_spots_in_image

    df = read_spots(spots)
    if mpp is None:
        mpp = estimate_mpp_from_spots(df)
        logger.info("%s: %.4f µm/px from the spot grid", spots, mpp)
    check_spots_in_image(df[K.X].to_numpy(float), df[K.Y].to_numpy(float), image,
                         source=spots)
    obs = pd.DataFrame({K.SPOT_ID: df[K.SPOT_ID].astype(str).to_numpy(),
                        K.X: df[K.X].to_numpy(float), K.Y: df[K.Y].to_numpy(float),
                        K.SLIDE_ID: pd.Categorical([section] * len(df)),
                        K.PATIENT_ID: pd.Categorical([section] * len(df))},
                       index=pd.Index([f"{section}:{s}" for s in df[K.SPOT_ID].astype(str)]))
    a = ad.AnnData(obs=obs)
    a.uns[K.UNS_SECTIONS] = {section: {"image_path": str(image), "mpp": float(mpp),
                                       "spots_path": str(spots), "platform": "spots"}}
    return a


def load_spot_model(run_path: str | Path) -> tuple[RunFolder, Any, dict[str, Any], Any]:
    """The run folder, its :class:`~histoexpr.config.STConfig`, ``final/model.json`` and the
    final spot-level model of a ``histoexpr st fit`` run.

    Raises
    ------
    InputError
        Not a spatial run folder (e.g. a bulk run: slide-level model), or no final model.
    """
    import joblib

    from ..config import STConfig

    run = RunFolder(run_path)
    if not run.path.is_dir():
        raise InputError(f"{run.path}: no such run folder; pass the --out of `histoexpr st fit`")
    command = (run.read_json(run.run_json).get("command") if run.run_json.is_file() else None)
    if command == "bulk" or (command is None and (run.path / files.ENTRIES).is_file()):
        raise InputError(f"{run.path} is a bulk run (a slide-level model); prediction needs "
                         "a spot-level model: pass a run folder of `histoexpr st fit`")
    raw = run.read_json(run.config)
    try:
        cfg = STConfig.from_dict(raw)
    except (InputError, TypeError) as e:
        raise InputError(f"{run.config}: not the config of a `histoexpr st fit` run ({e}); "
                         "predict-slide needs a spot-level run folder") from e
    model_path = run.final_model
    if not model_path.is_file():
        raise InputError(f"{run.path}: no final model (no final spot-level model at "
                         "final/model.joblib); the fit "
                         "ran with --no-refit or did not finish — rerun `histoexpr st fit`")
    info = run.read_json(run.final_info)
    return run, cfg, info, joblib.load(model_path)


def predict_section(run_path: str | Path, image: str | Path, spots: str | Path, *,
                    out: str | Path | None = None, mpp: float | None = None,
                    section: str | None = None, genes: list[str] | None = None,
                    n_map_genes: int = 3) -> AnnData:
    """Predict every spot of a section with the run's final model.

    Parameters
    ----------
    run_path
        A run folder from ``histoexpr st fit`` (with ``final/``).
    image, spots
        The section's H&E image and its spot table (any format
        :func:`histoexpr.expression.read_spots` reads).
    out
        Folder for ``<section>_predictions.h5ad`` and ``<section>_map.png`` (default:
        ``RUN/predict``).
    mpp
        Image µm/px; by default derived from the spot grid (legacy ST) — Visium needs it.
    genes
        Genes to map (default: the run's best-predicted genes).

    Returns
    -------
    AnnData
        Spots x genes predictions (``X``), spot positions in ``obs``, the patch white
        fraction in ``obs["white_fraction"]`` (spots over 0.5 are likely off the tissue).
    """
    from ..features.per_spot import spot_features
    from ..stain import StainNormalizer
    from ..tiling.spots import iter_section_patches, spot_white_fraction
    from .data import patch_spec, recorded_patch

    run, cfg, info, model = load_spot_model(run_path)
    image, spots = Path(image), Path(spots)
    for p in (image, spots):
        if not p.is_file():
            raise InputError(f"{p}: no such file")
    section = section or image.stem
    adata = _spots_adata(image, spots, mpp=mpp, section=section)
    spec = patch_spec(cfg, recorded=recorded_patch(run))
    stain_params = run.read_json(run.data_json).get("stain")
    stain = StainNormalizer.from_params(stain_params) if stain_params else None
    adata.obs["white_fraction"] = spot_white_fraction(adata, spec)
    if info["features"] == "patches":
        x = np.empty((adata.n_obs, spec.size_px, spec.size_px, 3), np.uint8)
        for _, rows, patches, _ in iter_section_patches(adata, spec):
            x[rows] = patches if stain is None else stain.transform(patches)
    elif info["features"] == "none":
        x = np.zeros((adata.n_obs, 1), np.float32)
    else:
        x = spot_features(adata, info["source"], spec, pretrained=info["pretrained"],
                          batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                          device=cfg.device, stain=stain, store=False, tta=cfg.tta)
        if cfg.context:
            from .fit import spot_context

            x = spot_context(x, adata, cfg.context)
    pred = np.asarray(model.predict(x), np.float32)
    smooth_path = run.path / files.SMOOTHING
    if smooth_path.is_file():  # the run's output smoothing (st fit --smooth)
        from .smoothing import smooth

        pred = smooth(pred, adata.obs[[K.X, K.Y]].to_numpy(float),
                      adata.obs[K.SLIDE_ID].to_numpy(), run.read_json(smooth_path)["strength"])
    result = AnnData(X=pred, obs=adata.obs.copy(), var=pd.DataFrame(index=info["genes"]),
                     uns={K.UNS_SECTIONS: adata.uns[K.UNS_SECTIONS],
                          "model": {"key": info.get("key", info.get("label")),
                                    "model": info["model"], "features": info["features"]},
                          "run": str(run.path)})
    result.obsm[K.OBSM_SPATIAL] = adata.obs[[K.X, K.Y]].to_numpy(np.float64)
    unc_path = run.path / files.UNCERTAINTY
    if unc_path.is_file():  # the run's conformal intervals (st evaluate)
        hw = run.read_json(unc_path)["halfwidth"]
        width = np.array([hw.get(g, np.nan) for g in info["genes"]], np.float32)
        result.layers["lower"] = pred - width
        result.layers["upper"] = pred + width
        result.uns["interval"] = {"nominal_coverage": run.read_json(unc_path)[
            "nominal_coverage"], "method": "split conformal, per gene"}
    out = Path(out) if out is not None else run.path / files.PREDICT
    h5 = out / f"{section}_predictions.h5ad"
    with atomic_path(h5, suffix=".h5ad") as tmp:
        result.write_h5ad(tmp)
    chosen = genes or best_genes(run, info["genes"], n_map_genes)
    missing = [g for g in chosen if g not in info["genes"]]
    if missing:
        raise InputError(f"gene(s) {', '.join(missing)} are not predicted by this run "
                         f"(it predicts e.g. {', '.join(info['genes'][:5])})")
    from ..plot.spatial import expression_maps, save_figure, section_image

    img, scale = section_image(image)
    fig = expression_maps(img, adata.obs[[K.X, K.Y]].to_numpy(float), chosen, predicted=pred,
                          gene_names=list(info["genes"]), scale=scale)
    save_figure(fig, out / f"{section}_map.png")
    write_json(out / f"{section}_predict.json", {"image": str(image), "spots": str(spots),
                                                 "n_spots": int(adata.n_obs),
                                                 "map_genes": chosen})
    logger.info("%d spots of %s predicted; %s", adata.n_obs, section, h5)
    return result


def best_genes(run: RunFolder, genes: list[str], n: int) -> list[str]:
    """The run's best-predicted genes (mean pooled Pearson r of the main model)."""
    if not run.metrics.is_file():
        return list(genes[:n])
    m = pd.read_csv(run.metrics)
    m = m[(m["kind"] == "model") & (m["section"] == "pooled") & (m["metric"] == "pearson_r")]
    r = m.groupby("gene")["value"].mean()
    r = r[r.index.isin(genes)].sort_values(ascending=False)
    return r.index[:n].tolist() or list(genes[:n])
