"""``histoexpr st evaluate``: metrics, the summary table and maps from a run folder.

Reads only what :func:`histoexpr.st.fit.fit_run` wrote (``folds/<k>/<model>.npz``), so it
can be rerun at any time, e.g. with other map genes. Writes:

- ``metrics.csv`` — tidy ``entry, model, features, kind, role, fold, section, gene, metric,
  value`` (per gene, pooled over a fold's test spots and per test section; see
  :mod:`histoexpr.metrics`); ``role`` is ``cv`` for a fold, ``holdout`` for the held-out
  set (fold ``pooled``), the vocabulary of every workflow (:mod:`histoexpr.runs.folds`);
- ``summary.csv`` — one row per entry and fold plus a ``mean`` row per entry over the cv
  folds: genes predicted and genes scored (Pearson r is undefined for a gene constant in the
  test spots, measured or predicted: such a gene is left out of every correlation column,
  counted in ``n_constant`` and logged), ``pearson_mean`` / ``pearson_median`` over the
  scored genes, genes with r > 0 / 0.3 / 0.5, mean r of the top 10 genes, genes with BH
  q < 0.05, mean Spearman r, mean R² and RMSE over genes (where the mean predictor, whose r
  is undefined, is compared), wall and CPU seconds of the fit;
- ``uncertainty.json`` — 90 % conformal intervals from the out-of-fold residuals of the
  predictor ``st predict`` uses (the main model, smoothed when the run smooths): one
  half-width per gene, and the adaptive (per-spot) model; the coverage and mean width of
  both on the held-out set and on each cv fold in turn, per section
  (:mod:`histoexpr.st.uncertainty`);
- ``predictions.h5ad`` — out-of-fold predictions of the main model (genes chosen in every
  fold), with the measured values in ``layers["measured"]``;
- ``maps/<section>.png`` and ``maps/scatter.png`` for the best-predicted genes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import _keys as K
from ..atomic import atomic_path, write_csv, write_json
from ..errors import InputError
from ..runs import RunFolder, files

logger = logging.getLogger(__name__)

__all__ = ["SUMMARY_COLUMNS", "evaluate_run", "load_predictions"]

#: the summary's columns, in the vocabulary every workflow shares (see histoexpr.runs.folds)
SUMMARY_COLUMNS = ["entry", "model", "features", "kind", "role", "fold", "n_spots", "n_genes",
                   "n_scored", "n_constant", "pearson_mean", "pearson_median",
                   "n_pearson_r_gt_0", "n_pearson_r_gt_0.3", "n_pearson_r_gt_0.5",
                   "pearson_top10_mean", "n_pearson_q_lt_0.05", "spearman_mean", "r2_mean",
                   "rmse_mean", "wall_s", "cpu_s"]
#: the columns that name a result (an entry on a fold) in metrics.csv and summary.csv
TAGS = ["entry", "model", "features", "kind", "role", "fold"]


def load_predictions(run: RunFolder) -> list[dict[str, Any]]:
    """Every fold result of a run that predicted spots (``folds/<unit>/<entry>.npz`` and its
    ``.json`` record, written by :func:`histoexpr.runs.folds.run_folds`), with its entry's
    description; ``spots`` are the predicted spots, ``wall_s`` / ``cpu_s`` the fit's cost,
    ``train_error`` its aMAE / aRMSE on the training spots (runs before it was recorded:
    ``None``)."""
    plan = run.read_json(run.models_json)
    out = []
    for e in plan:
        for path in sorted(run.path.glob(f"{files.FOLDS}/*/{e['key']}.npz")):
            meta = path.with_suffix(".json")
            rec = run.read_json(meta) if meta.is_file() else {}
            cost = rec.get("cost", {})
            with np.load(path, allow_pickle=False) as z:
                if not len(z["ids"]):
                    continue  # a refit on every spot: nothing to score
                role = str(z["roles"][0])  # cv (a fold) or holdout (scored as one set)
                out.append({**e, "entry": e["key"], "role": role, "spots": z["ids"],
                            "fold": path.parent.name if role == "cv" else "pooled",
                            **{k: z[k] for k in ("genes", "y_true", "y_pred")},
                            "wall_s": cost.get("wall_s", np.nan),
                            "cpu_s": cost.get("cpu_s", np.nan),
                            "train_error": rec.get("train_error"),
                            "n_epochs": rec.get("n_epochs")})
    if not out:
        raise InputError(f"{run.path}: no fold results yet; run `histoexpr st fit` (an "
                         "interrupted fit resumes when rerun with the same options)")
    return out


def _section_of(spots: np.ndarray) -> np.ndarray:
    return np.array([s.split(":", 1)[0] for s in spots.astype(str)], dtype=object)


def _summary_row(res: dict[str, Any], tidy_pooled: pd.DataFrame) -> dict[str, Any]:
    from ..metrics import summarise

    wide = tidy_pooled.pivot(index="gene", columns="metric", values="value")
    p = summarise(wide, metric="pearson_r")
    undefined = wide.index[wide["pearson_r"].isna()].astype(str).tolist()
    if undefined and res["model"] != "mean":  # the mean predictor is constant by design
        logger.warning(
            "fold %s, %s: Pearson r is undefined for %d of %d genes, constant in the test "
            "spots (measured or predicted; e.g. %s); they are left out of the mean and "
            "counted in n_constant", res["fold"], res["key"], len(undefined), len(wide),
            ", ".join(undefined[:3]))
    s = summarise(wide, metric="spearman_r")
    return {
        **{k: res[k] for k in TAGS}, "n_spots": len(res["spots"]), "n_genes": p["n_genes"],
        "n_scored": p["n_valid"], "n_constant": p["n_constant"],
        "pearson_mean": p["mean"], "pearson_median": p["median"],
        "n_pearson_r_gt_0": p["n_r_gt_0"], "n_pearson_r_gt_0.3": p["n_r_gt_0.3"],
        "n_pearson_r_gt_0.5": p["n_r_gt_0.5"], "pearson_top10_mean": p["top10_mean"],
        "n_pearson_q_lt_0.05": p["n_q_lt_0.05"], "spearman_mean": s["mean"],
        "r2_mean": float(np.nanmean(wide["r2"])), "rmse_mean": float(np.nanmean(wide["rmse"])),
        "wall_s": float(res["wall_s"]), "cpu_s": float(res["cpu_s"]),
    }


def evaluate_run(path: str | Path, *, map_genes: list[str] | None = None, n_map_genes: int = 3,
                 maps: bool = True, n_map_sections: int = 4,
                 spatialdata: bool = False) -> pd.DataFrame:
    """Score every fold result of a run; write the files listed in the module docstring.

    Parameters
    ----------
    path
        The run folder.
    map_genes
        Genes to draw (default: the ``n_map_genes`` best-predicted by the main model).
    maps
        Draw maps (needs the section images).
    n_map_sections
        Draw at most this many sections (the first test section of each fold first).
    spatialdata
        Also write the held-out predictions as a SpatialData store, ``RUN/predictions.zarr``
        (each section's H&E, its spots as circles, measured and predicted expression).

    Returns
    -------
    pandas.DataFrame
        The summary table (``summary.csv``).
    """
    from ..metrics import POOLED, evaluate

    run = RunFolder(path)
    results = load_predictions(run)
    if run.config.is_file() and run.read_json(run.config).get("smooth"):
        results += _smoothed(run, results)
    tidy, rows = [], []
    for res in results:
        if len(res["spots"]) < 3:
            logger.warning("fold %s of %s has %d test spots; not scored", res["fold"],
                           res["key"], len(res["spots"]))
            continue
        t = evaluate(res["y_true"], res["y_pred"], genes=res["genes"].tolist(),
                     sections=_section_of(res["spots"]), fold=res["fold"])
        for k in reversed(TAGS[:-1]):  # fold is evaluate's own column
            t.insert(0, k, res[k])
        tidy.append(t)
        rows.append(_summary_row(res, t[t["section"] == POOLED]))
    tidy_df = pd.concat(tidy, ignore_index=True)
    write_csv(run.metrics, tidy_df, index=False)
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    cv = summary[summary["role"] == "cv"]
    means = cv.groupby(TAGS[:-1], sort=False).mean(numeric_only=True)
    means = means.reset_index().assign(fold="mean")
    summary = pd.concat([summary, means[SUMMARY_COLUMNS]], ignore_index=True)
    write_csv(run.summary, summary, index=False)
    unc = _uncertainty(run, results)
    if unc is not None:
        write_json(run.path / files.UNCERTAINTY, unc)
    main = [r for r in results if r["kind"] == "model" and r["role"] == "cv"
            and not r.get("derived")]
    if main:
        oof = _out_of_fold(run, main)
        if maps:
            try:
                _draw_maps(run, oof, tidy_df, map_genes, n_map_genes, n_map_sections)
            except InputError as e:
                logger.warning("maps not drawn: %s", e)
        if spatialdata:
            from .sdata_out import write_spots_store

            if K.X not in oof.obs:
                raise InputError(f"{run.path}: no spots.csv, so the held-out predictions "
                                 "cannot be placed on the images; rerun st fit")
            write_spots_store(run.path / files.PREDICTIONS_ZARR, oof,
                              uns={"model": oof.uns["model"], "run": str(run.path),
                                   "predictions": "held-out (out-of-fold)"})
    elif spatialdata:
        logger.warning("%s: no cross-validated model predictions; no SpatialData store",
                       run.path)
    return summary


def _uncertainty(run: RunFolder, results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The intervals of the predictor ``st predict`` uses (:mod:`.uncertainty`): the main
    model's results, smoothed when the run smooths its output."""
    from .uncertainty import uncertainty_record

    derived = [r for r in results if r.get("derived")]
    return uncertainty_record(derived or [r for r in results if not r.get("derived")],
                              xy_of=_xy_lookup(run) if run.spots.is_file() else None)


def _xy_lookup(run: RunFolder):
    """``xy_of(spots) -> (xy, sections)`` from the run's ``spots.csv``."""
    pos = pd.read_csv(run.spots, index_col=0)
    pos.index = pos.index.astype(str)

    def xy_of(spots):
        sub = pos.loc[pd.Index(spots).astype(str)]
        return sub[[K.X, K.Y]].to_numpy(float), sub[K.SLIDE_ID].astype(str).to_numpy()

    return xy_of


def _smoothed(run: RunFolder, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The main model's results smoothed over the spot grid (:mod:`.smoothing`): a cv fold
    with the strength chosen on the other folds, the held-out set with the one chosen on
    every fold (saved for ``st predict``)."""
    from .smoothing import best_strength, smooth, strength_scores

    xy_of = _xy_lookup(run)
    main = [r for r in results if r["kind"] == "model"]
    cv = [r for r in main if r["role"] == "cv"]
    if len(cv) < 2:
        logger.warning("smoothing needs two or more cv folds to choose its strength; skipped")
        return []
    scores = strength_scores(cv, xy_of)  # each fold smoothed at each strength, once
    overall = best_strength(scores)
    out, per_fold = [], {}
    for r in main:
        a = overall
        if r["role"] == "cv":
            a = best_strength(scores, leave_out=next(i for i, q in enumerate(cv) if q is r))
            per_fold[str(r["fold"])] = a
        xy, sec = xy_of(r["spots"])
        key = f"{r['key']}+smooth"
        out.append({**r, "key": key, "entry": key, "derived": True,
                    "y_pred": smooth(r["y_pred"], xy, sec, a)})
    write_json(run.path / files.SMOOTHING, {"strength": overall, "per_fold": per_fold,
                                            "radius": 1.0, "chosen_on": "other cv folds"})
    logger.info("smoothing strength %.2f (chosen on the cv folds)", overall)
    return out


def _out_of_fold(run: RunFolder, main: list[dict[str, Any]]):
    """One AnnData of the main model's test-fold predictions for the genes of every fold."""
    import anndata as ad

    genes = list(main[0]["genes"])
    for r in main[1:]:
        shared = set(r["genes"])
        genes = [g for g in genes if g in shared]
    spots, pred, true, fold = [], [], [], []
    for r in main:
        idx = pd.Index(r["genes"]).get_indexer(genes)
        spots.append(r["spots"])
        pred.append(r["y_pred"][:, idx])
        true.append(r["y_true"][:, idx])
        fold += [r["fold"]] * len(r["spots"])
    obs = pd.DataFrame(index=pd.Index(np.concatenate(spots).astype(str), name=None))
    obs[K.SLIDE_ID] = pd.Categorical(_section_of(obs.index.to_numpy()))
    obs["fold"] = pd.Categorical(fold)
    data = run.read_json(run.data_json)
    out = ad.AnnData(X=np.concatenate(pred).astype(np.float32), obs=obs,
                     var=pd.DataFrame(index=pd.Index(genes)),
                     layers={"measured": np.concatenate(true).astype(np.float32)})
    xy = _spot_xy(run, out.obs_names)
    if xy is not None:
        out.obs[K.X], out.obs[K.Y] = xy[:, 0], xy[:, 1]
        out.obsm[K.OBSM_SPATIAL] = xy.astype(np.float64)
    out.uns[K.UNS_SECTIONS] = {s: {k: v for k, v in info.items() if v is not None}
                               for s, info in data["sections"].items() if s in
                               set(obs[K.SLIDE_ID])}
    out.uns["model"] = main[0]["key"]
    with atomic_path(run.predictions, suffix=".h5ad") as tmp:
        out.write_h5ad(tmp)
    return out


def _spot_xy(run: RunFolder, spots: pd.Index) -> np.ndarray | None:
    """Spot centres from the run's ``spots.csv``."""
    if not run.spots.is_file():
        logger.warning("%s: no spots.csv; no maps", run.path)
        return None
    pos = pd.read_csv(run.spots, index_col=0)
    return pos.loc[spots, [K.X, K.Y]].to_numpy(float)


def _draw_maps(run: RunFolder, oof, tidy: pd.DataFrame, genes: list[str] | None,
               n: int, n_sections: int) -> None:
    from ..metrics import POOLED
    from ..plot.spatial import expression_maps, prediction_scatter, save_figure, section_image

    if K.X not in oof.obs:
        return
    label = oof.uns["model"]
    main = tidy[(tidy["kind"] == "model") & (tidy["section"] == POOLED)
                & (tidy["metric"] == "pearson_r") & (tidy["role"] == "cv")]
    r = main.groupby("gene")["value"].mean()
    r = r[r.index.isin(oof.var_names)]
    if genes is None:
        genes = r.sort_values(ascending=False).index[:n].tolist()
    missing = [g for g in genes if g not in oof.var_names]
    if missing:
        raise InputError(f"map gene(s) {', '.join(missing)} were not predicted in every fold "
                         f"(e.g. {', '.join(oof.var_names[:5])})")
    names = oof.var_names.tolist()
    by_fold = oof.obs.drop_duplicates("fold")[K.SLIDE_ID].astype(str).tolist()
    order = list(dict.fromkeys(by_fold + oof.obs[K.SLIDE_ID].astype(str).tolist()))
    for s in order[:n_sections]:
        info = oof.uns[K.UNS_SECTIONS].get(s, {})
        if not info.get("image_path"):
            continue
        sub = oof[oof.obs[K.SLIDE_ID] == s]
        img, scale = section_image(info["image_path"])
        fig = expression_maps(img, sub.obs[[K.X, K.Y]].to_numpy(float), genes,
                              measured=np.asarray(sub.layers["measured"]),
                              predicted=np.asarray(sub.X), gene_names=names, scale=scale,
                              r={g: float(r.get(g, np.nan)) for g in genes})
        save_figure(fig, run.maps / f"{s}.png")
    fig = prediction_scatter(np.asarray(oof.layers["measured"]), np.asarray(oof.X), names,
                             genes)
    save_figure(fig, run.maps / "scatter.png")
    logger.info("maps of %s (%s) in %s", ", ".join(genes), label, run.maps)
