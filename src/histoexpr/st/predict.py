"""``histoexpr st predict``: expression of a new section (image + spot positions) from a
fitted run, as an AnnData and map PNGs, with the run's conformal intervals per spot and an
uncertainty map; given the section's counts too, per-gene scores and the coverage the
intervals reach on it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .. import _keys as K
from ..atomic import atomic_path, write_csv
from ..errors import InputError
from ..runs import RunFolder, files, write_json
from ..runs.portable import is_model_file, portable_output

logger = logging.getLogger(__name__)

__all__ = ["best_genes", "load_spot_model", "measured_expression", "predict_section",
           "score_section"]

#: what ``--counts`` may be, for messages
COUNTS_FORMATS = ("a spots x genes counts table (legacy ST .tsv/.tsv.gz), an .h5ad, a 10x "
                  ".h5 or a 10x matrix folder")


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
    final spot-level model of a ``histoexpr st fit`` run, or of a model file
    (``histoexpr export-model``; its run files unpacked in the model cache).

    Raises
    ------
    InputError
        Not a spatial run folder (e.g. a bulk run: slide-level model), or no final model.
    """
    import joblib

    from ..config import STConfig
    from ..runs.portable import open_model

    model = None
    if is_model_file(run_path):  # a `histoexpr export-model` file: no unpickling
        run_path, model = open_model(run_path)
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
    if model is None and not model_path.is_file():
        raise InputError(f"{run.path}: no final model (no final spot-level model at "
                         "final/model.joblib); the fit "
                         "ran with --no-refit or did not finish — rerun `histoexpr st fit`")
    info = run.read_json(run.final_info)
    return run, cfg, info, model if model is not None else joblib.load(model_path)


def _check_grid(run: RunFolder, cfg: Any, adata: AnnData, spots: Path) -> None:
    """A run that averages over grid neighbours (context, smoothing) needs spots on a grid."""
    if not (cfg.context or (run.path / files.SMOOTHING).is_file()) or adata.n_obs < 2:
        return
    from ..features.context import no_grid_reason, spot_grid

    g = spot_grid(adata.obs[[K.X, K.Y]].to_numpy(float))
    if not g.regular:
        raise InputError(f"{spots}: {run.path} averages over each spot's grid neighbours "
                         f"(--context / --smooth), but these spots are not on a grid "
                         f"({no_grid_reason(g)}); check the spot positions")


def predict_section(run_path: str | Path, image: str | Path, spots: str | Path, *,
                    out: str | Path | None = None, mpp: float | None = None,
                    section: str | None = None, genes: list[str] | None = None,
                    n_map_genes: int = 3, counts: str | Path | None = None,
                    spatialdata: bool = False) -> AnnData:
    """Predict every spot of a section with the run's final model.

    Parameters
    ----------
    run_path
        A run folder from ``histoexpr st fit`` (with ``final/``), or a model file of
        ``histoexpr export-model``.
    image, spots
        The section's H&E image and its spot table (any format
        :func:`histoexpr.expression.read_spots` reads).
    out
        Folder for the outputs (default: ``RUN/predict``): ``<section>_predictions.h5ad``,
        ``<section>_map.png``, ``<section>_uncertainty.png`` (interval width per spot, when
        the run has intervals), ``<section>_spots.geojson`` (each spot's patch with every
        gene as a QuPath measurement, in image pixels) and ``<section>_predict.json``;
        with ``counts`` also
        ``<section>_metrics.csv`` / ``.json`` (see :func:`score_section`).
    mpp
        Image µm/px; by default derived from the spot grid (legacy ST) — Visium needs it.
    genes
        Genes to map (default: the run's best-predicted genes).
    counts
        The section's measured counts (a spots x genes table as legacy ST writes it, an
        ``.h5ad``, a 10x ``.h5`` or matrix folder), spot ids as in ``spots``: the section is
        then scored, and its maps show the measured expression and the error too.
    spatialdata
        Also write ``<section>.zarr``, a SpatialData store of the H&E (multiscale), the
        spots (circles) and the predictions, intervals and measured values (its table).

    Returns
    -------
    AnnData
        Spots x genes predictions (``X``), spot positions in ``obs``, the patch white
        fraction in ``obs["white_fraction"]`` (spots over 0.5 are likely off the tissue);
        ``layers["lower"]`` / ``["upper"]`` the run's conformal interval (per spot with
        the adaptive method, ``uns["interval"]`` says which); with ``counts``,
        ``layers["measured"]`` (normalised as the run's targets; NaN where not scored) and
        ``obs["scored"]``.
    """
    run, cfg, info, model = load_spot_model(run_path)
    image, spots = Path(image), Path(spots)
    for p in (image, spots):
        if not p.is_file():
            raise InputError(f"{p}: no such file")
    section = section or image.stem
    adata = _spots_adata(image, spots, mpp=mpp, section=section)
    _check_grid(run, cfg, adata, spots)
    names = list(info["genes"])
    chosen = genes or best_genes(run, names, n_map_genes)
    missing = [g for g in chosen if g not in names]
    if missing:
        raise InputError(f"gene(s) {', '.join(missing)} are not predicted by this run "
                         f"(it predicts e.g. {', '.join(names[:5])})")
    measured = None
    if counts is not None:  # read before the slow part: a bad file fails at once
        measured = measured_expression(cfg, counts, spots, adata, names)
        adata.obs["scored"] = measured["keep"]
    pred = _predict(run, cfg, info, model, adata)  # adds obs["white_fraction"]
    xy = adata.obs[[K.X, K.Y]].to_numpy(float)
    result = AnnData(X=pred, obs=adata.obs.copy(), var=pd.DataFrame(index=names),
                     uns={K.UNS_SECTIONS: adata.uns[K.UNS_SECTIONS],
                          "model": {"key": info.get("key", info.get("label")),
                                    "model": info["model"], "features": info["features"]},
                          "run": str(run.path)})
    result.obsm[K.OBSM_SPATIAL] = xy.astype(np.float64)
    _add_intervals(run, result)
    if out is None:  # beside a model file (its run folder is the cache's), else RUN/predict
        out = (portable_output(run_path) if is_model_file(run_path)
               else run.path / files.PREDICT)
    out = Path(out)
    result.uns["out"] = str(out)
    record: dict[str, Any] = {"image": str(image), "spots": str(spots),
                              "n_spots": int(adata.n_obs), "map_genes": chosen,
                              "interval": result.uns.get("interval", {}).get("method")}
    scores = None
    if measured is not None:
        white = result.obs["white_fraction"].to_numpy() > cfg.max_white
        excluded = {**measured["excluded"], f"patch > {cfg.max_white:.0%} white":
                    int((result.obs["scored"] & white).sum())}
        result.obs["scored"] &= ~white
        truth = measured["truth"]
        truth[~result.obs["scored"].to_numpy()] = np.nan
        result.layers["measured"] = truth
        scores = score_section(result, out, section, counts=counts, excluded=excluded,
                               missing_genes=measured["missing_genes"])
        record["counts"] = str(counts)
    h5 = out / files.PREDICT_H5AD.format(section=section)
    with atomic_path(h5, suffix=".h5ad") as tmp:
        result.write_h5ad(tmp)
    _draw(result, image, out, section, chosen, scores)
    mpp = (adata.uns[K.UNS_SECTIONS].get(section) or {}).get("mpp")
    if mpp:  # QuPath objects: each spot's patch (the run's patch_um) with every gene
        from .qupath import write_tiles_geojson

        side = float(cfg.patch_um) / float(mpp)
        geo = write_tiles_geojson(out / files.PREDICT_GEOJSON.format(section=section),
                                  xy - side / 2, side, pred, names)
        record["geojson"] = geo.name
    if spatialdata:
        from .sdata_out import write_spots_store

        store = write_spots_store(out / files.PREDICT_ZARR.format(section=section), result,
                                  uns={"run": str(run.path), "model": str(info["model"])})
        record["spatialdata"] = store.name
    write_json(out / files.PREDICT_RECORD.format(section=section), record)
    logger.info("%d spots of %s predicted; %s", adata.n_obs, section, h5)
    return result


def _predict(run: RunFolder, cfg: Any, info: dict[str, Any], model: Any,
             adata: AnnData) -> np.ndarray:
    """The final model's (smoothed, as the run was) predictions for the spots of ``adata``;
    adds ``obs["white_fraction"]``."""
    from ..stain import StainNormalizer
    from ..tiling.spots import iter_section_patches, spot_white_fraction
    from .data import patch_spec, recorded_patch

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
        from .fit import entry_features  # the run's encoders, TTA and context, as in fit

        x = entry_features(cfg, adata, info["source"], spec, pretrained=info["pretrained"],
                           stain=stain)
    pred = np.asarray(model.predict(x), np.float32)
    smooth_path = run.path / files.SMOOTHING
    if smooth_path.is_file():  # the run's output smoothing (st fit --smooth)
        from .smoothing import smooth

        pred = smooth(pred, adata.obs[[K.X, K.Y]].to_numpy(float),
                      adata.obs[K.SLIDE_ID].to_numpy(), run.read_json(smooth_path)["strength"])
    return pred


def _add_intervals(run: RunFolder, result: AnnData) -> None:
    """``layers["lower"]`` / ``["upper"]`` from the run's ``uncertainty.json`` (written by
    ``st evaluate``): per spot when it holds the adaptive model, else one width per gene."""
    from .uncertainty import interval_halfwidths

    path = run.path / files.UNCERTAINTY
    if not path.is_file():
        logger.info("%s: no uncertainty.json; no intervals (run `histoexpr st evaluate`)",
                    run.path)
        return
    rec = run.read_json(path)
    pred = np.asarray(result.X)
    half, method = interval_halfwidths(rec, pred, result.var_names.astype(str).tolist(),
                                       result.obs[[K.X, K.Y]].to_numpy(float),
                                       result.obs[K.SLIDE_ID].astype(str).to_numpy())
    result.layers["lower"] = pred - half
    result.layers["upper"] = pred + half
    result.uns["interval"] = {"nominal_coverage": rec["nominal_coverage"], "method": method}


def _draw(result: AnnData, image: Path, out: Path, section: str, genes: list[str],
          scores: pd.DataFrame | None) -> None:
    """The prediction map (with the measured expression when known) and the uncertainty
    map (interval width per spot, and the error when the expression is known)."""
    from ..plot.spatial import expression_maps, save_figure, section_image
    from ..plot.uncertainty import interval_maps

    img, scale = section_image(image)
    xy = result.obs[[K.X, K.Y]].to_numpy(float)
    names = result.var_names.astype(str).tolist()
    pred = np.asarray(result.X)
    truth = result.layers["measured"] if "measured" in result.layers else None
    r = None if scores is None else scores["pearson_r"].to_dict()
    fig = expression_maps(img, xy, genes, measured=truth, predicted=pred, gene_names=names,
                          scale=scale, r=r)
    save_figure(fig, out / files.PREDICT_MAP.format(section=section))
    if "lower" not in result.layers:
        return
    width = np.asarray(result.layers["upper"]) - np.asarray(result.layers["lower"])
    fig = interval_maps(img, xy, genes, width=width, gene_names=names, scale=scale,
                        error=None if truth is None else np.abs(truth - pred),
                        coverage=None if scores is None else scores["coverage"].to_dict())
    save_figure(fig, out / files.PREDICT_UNCERTAINTY_MAP.format(section=section))


def _read_counts(path: Path, spots: Path, *, section: str, mpp: float) -> AnnData:
    """Raw counts of one section, ``obs_names`` its spot ids, ``layers["counts"]``."""
    import anndata as ad

    from ..expression import read_10x_h5, read_10x_mtx, read_h5ad, read_legacy_st
    from ..expression.section import unique_genes

    if not path.exists():
        raise InputError(f"{path}: no such counts file; give --counts {COUNTS_FORMATS}")
    if path.suffix == ".h5ad":
        a = read_h5ad(path)
        a.obs_names = a.obs[K.SPOT_ID].astype(str).to_numpy()
        return a
    if path.suffix == ".h5" or path.is_dir():
        x, barcodes, features = read_10x_h5(path) if path.is_file() else read_10x_mtx(path)
        return ad.AnnData(X=x, obs=pd.DataFrame(index=barcodes.astype(str)),
                          var=pd.DataFrame(index=unique_genes(features["name"], path)),
                          layers={K.LAYER_COUNTS: x.copy()})
    # a table: read as legacy ST, joined to the spot table (its errors name both files)
    a = read_legacy_st(path, spots, section=section, mpp=mpp)
    a.obs_names = a.obs[K.SPOT_ID].astype(str).to_numpy()
    return a


def measured_expression(cfg: Any, counts: str | Path, spots: str | Path, adata: AnnData,
                        genes: list[str]) -> dict[str, Any]:
    """The measured expression of ``adata``'s spots for ``genes``, normalised as the run
    normalised its targets (``cfg.target_sum``, ``cfg.log`` and ``cfg.gene_names`` through
    the same functions as :func:`histoexpr.st.data.load_spot_data`, over every gene of the
    counts).

    Returns
    -------
    dict
        ``truth`` ``(spots, genes)`` float32 (NaN: no counts row, or a gene the counts lack),
        ``keep`` (spots with a counts row and at least ``cfg.min_counts`` counts),
        ``excluded`` (reason -> spots) and ``missing_genes`` (genes of the model the counts
        lack).

    Raises
    ------
    InputError
        An unreadable file, or spot ids that do not match ``spots`` (the message names both
        files), or no gene of the model in the counts.
    """
    from ..expression import normalise, spot_mask
    from ..expression.section import join_report

    counts, spots = Path(counts), Path(spots)
    info = next(iter(adata.uns[K.UNS_SECTIONS].values()))
    m = _read_counts(counts, spots, section=str(adata.obs[K.SLIDE_ID].iloc[0]),
                     mpp=info["mpp"])
    if cfg.gene_names:
        from ..expression.genenames import read_gene_names, rename_genes

        m = rename_genes(m, read_gene_names(cfg.gene_names), source=cfg.gene_names)
    if m.obs_names.has_duplicates:
        raise InputError(f"{counts}: {int(m.obs_names.duplicated().sum())} duplicate spot "
                         "id(s); give one counts row per spot")
    want = adata.obs[K.SPOT_ID].astype(str)
    row = m.obs_names.get_indexer(want)
    join_report(int((row >= 0).sum()), len(want), m.n_obs, left=spots, right=counts,
                left_ids=list(want), right_ids=list(m.obs_names), what="spots",
                has="have a counts row")
    raw = m.layers[K.LAYER_COUNTS] if K.LAYER_COUNTS in m.layers else m.X
    col = m.var_names.get_indexer(genes)
    missing = [g for g, c in zip(genes, col) if c < 0]
    if len(missing) == len(genes):
        raise InputError(f"{counts}: none of the model's {len(genes)} genes are in the counts "
                         f"(model: {', '.join(genes[:3])}; counts: "
                         f"{', '.join(map(str, m.var_names[:3]))}); give this section's counts "
                         "with the same gene names as the run's sections")
    if missing:
        logger.warning("%s lacks %d of the model's %d genes (%s%s); they are not scored",
                       counts, len(missing), len(genes), ", ".join(missing[:5]),
                       ", ..." if len(missing) > 5 else "")
    norm = normalise(raw, target_sum=cfg.target_sum, log=cfg.log)  # every gene, as the run
    truth = np.full((len(want), len(genes)), np.nan, np.float32)
    have = row >= 0
    truth[np.ix_(have, col >= 0)] = norm[np.ix_(row[have], col[col >= 0])]
    enough = np.zeros(len(want), bool)
    enough[have] = spot_mask(raw, min_counts=cfg.min_counts)[row[have]]
    return {"truth": truth, "keep": enough, "missing_genes": missing,
            "excluded": {"no counts row": int((~have).sum()),
                         f"total counts < {cfg.min_counts:g}": int((have & ~enough).sum())}}


def score_section(result: AnnData, out: Path, section: str, *, counts: Any,
                  excluded: dict[str, int], missing_genes: list[str]) -> pd.DataFrame:
    """Per-gene scores of the predictions against ``layers["measured"]`` on the spots in
    ``obs["scored"]`` (Pearson and Spearman r, R², RMSE; the share inside the interval and
    its mean width), written to ``<section>_metrics.csv``, and their summary to
    ``<section>_metrics.json``; returns the table (indexed by gene)."""
    from ..metrics import per_gene, summarise

    scored = result.obs["scored"].to_numpy(bool)
    if scored.sum() < 3:
        raise InputError(f"{counts}: {int(scored.sum())} spots have counts to score (excluded: "
                         f"{excluded}); scoring needs three or more")
    names = result.var_names.astype(str).tolist()
    keep = [j for j, g in enumerate(names) if g not in set(missing_genes)]
    truth = np.asarray(result.layers["measured"])[scored][:, keep]
    pred = np.asarray(result.X)[scored][:, keep]
    table = per_gene(truth, pred, genes=[names[j] for j in keep])
    table["n_spots"] = int(scored.sum())
    if "lower" in result.layers:
        lo = np.asarray(result.layers["lower"])[scored][:, keep]
        hi = np.asarray(result.layers["upper"])[scored][:, keep]
        table["coverage"] = ((truth >= lo) & (truth <= hi)).mean(axis=0)
        table["mean_width"] = (hi - lo).mean(axis=0)
    else:
        table["coverage"] = table["mean_width"] = np.nan
    write_csv(out / files.PREDICT_METRICS.format(section=section), table)
    p, sr = summarise(table, metric="pearson_r"), summarise(table, metric="spearman_r")
    interval = result.uns.get("interval", {})
    summary = {
        "section": section, "counts": str(counts), "n_spots": int(result.n_obs),
        "n_scored_spots": int(scored.sum()), "excluded_spots": excluded,
        "n_genes": len(names), "n_scored_genes": len(keep), "missing_genes": missing_genes,
        "n_constant": p["n_constant"], "pearson_mean": p["mean"], "pearson_median": p["median"],
        "n_pearson_r_gt_0.3": p["n_r_gt_0.3"], "spearman_mean": sr["mean"],
        "interval": interval.get("method"), "nominal_coverage": interval.get("nominal_coverage"),
        "coverage": float(table["coverage"].mean()), "mean_width": float(
            table["mean_width"].mean()),
        "normalised_as": "the run's targets (target_sum, log of its config)"}
    write_json(out / files.PREDICT_SCORES.format(section=section), summary)
    logger.info("%s: %d genes scored on %d spots, mean Pearson r %.3f%s", section, len(keep),
                scored.sum(), p["mean"], f", {100 * summary['coverage']:.1f} % inside the "
                "intervals" if "lower" in result.layers else "")
    return table


def best_genes(run: RunFolder, genes: list[str], n: int) -> list[str]:
    """The run's best-predicted genes (mean pooled Pearson r of the main model)."""
    if not run.metrics.is_file():
        return list(genes[:n])
    m = pd.read_csv(run.metrics)
    m = m[(m["kind"] == "model") & (m["section"] == "pooled") & (m["metric"] == "pearson_r")]
    r = m.groupby("gene")["value"].mean()
    r = r[r.index.isin(genes)].sort_values(ascending=False)
    return r.index[:n].tolist() or list(genes[:n])
