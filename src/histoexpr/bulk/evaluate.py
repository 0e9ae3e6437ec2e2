"""``histoexpr bulk evaluate``: score every fit of a bulk run across genes and across patients.

Predictions are pooled by *role*: ``cv`` (every slide's out-of-fold prediction; also scored
per fold), ``holdout``, ``val``, ``test``. Slides of one patient are averaged first, so each
patient counts once (expression is per patient).

- **Across genes** (per gene, over patients): Pearson and Spearman r with p and BH q over the
  genes, R², MAE, RMSE (:func:`histoexpr.metrics.per_gene`) → ``metrics.csv``.
- **Across patients** (per patient, over genes; hist2RNA's second view): Spearman and
  Pearson r with p and BH q over patients (:func:`histoexpr.metrics.per_sample`) →
  ``patients.csv``. Needs at least 3 genes.
- ``summary.csv``: per entry, role and fold: median and mean Spearman/Pearson across genes,
  genes significant at FDR 0.05 (Spearman q), genes with r > 0.4, mean R² and RMSE, median
  Spearman across patients and patients at q < 0.05, and the fit cost of the entry.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..runs import BulkRunFolder

__all__ = ["collect_predictions", "evaluate_run", "score"]

logger = logging.getLogger(__name__)


def collect_predictions(rf: BulkRunFolder) -> pd.DataFrame:
    """Every predicted row of every fit: ``entry, model, features, kind, unit, role, slide``,
    then one column per gene."""
    genes = rf.read_json(rf.data_json)["genes"]
    frames = []
    for d in rf.unit_dirs():
        for meta in sorted(d.glob("*.json")):
            npz = meta.with_suffix(".npz")
            if not npz.is_file():
                continue
            info = json.loads(meta.read_text())
            with np.load(npz, allow_pickle=False) as z:
                if len(z["rows"]) == 0:
                    continue
                df = pd.DataFrame(z["y_pred"], columns=z["genes"].astype(str))[genes]
                df.insert(0, "slide", z["ids"].astype(str))
                df.insert(0, "role", z["roles"].astype(str))
            e = info["entry"]
            for col, v in (("unit", d.name), ("kind", e["kind"]), ("features", e["features"]),
                           ("model", e["model"]), ("entry", e["key"])):
                df.insert(0, col, v)
            frames.append(df)
    if not frames:
        raise InputError(f"{rf.path}: no finished fits to evaluate; run `histoexpr bulk fit`")
    return pd.concat(frames, ignore_index=True)


def score(measured: pd.DataFrame, predicted: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                    dict[str, float]]:
    """Across-gene metrics, across-patient metrics and the summary of one prediction set.

    ``measured`` and ``predicted`` are patients x genes with the same index and columns.
    """
    from ..metrics import per_gene, per_sample, summarise

    g = per_gene(measured, predicted)
    sp = summarise(g, metric="spearman_r", thresholds=(0.4,), top_k=(10,))
    pe = summarise(g, metric="pearson_r", thresholds=(0.4,), top_k=(10,))
    row = {"n_patients": len(measured), "n_genes": measured.shape[1],
           "spearman_median": sp["median"], "spearman_mean": sp["mean"],
           "n_spearman_q_lt_0.05": sp["n_q_lt_0.05"], "n_spearman_r_gt_0.4": sp["n_r_gt_0.4"],
           "pearson_median": pe["median"], "pearson_mean": pe["mean"],
           "n_pearson_q_lt_0.05": pe["n_q_lt_0.05"], "n_pearson_r_gt_0.4": pe["n_r_gt_0.4"],
           "r2_mean": float(np.nanmean(g["r2"])) if g["r2"].notna().any() else np.nan,
           "rmse_mean": float(g["rmse"].mean()), "n_scored": sp["n_valid"],
           "n_constant": sp["n_constant"]}
    pats = pd.DataFrame(index=measured.index)
    if measured.shape[1] >= 3:
        s = per_sample(measured, predicted, method="spearman")
        p = per_sample(measured, predicted, method="pearson")
        pats = s.drop(columns="constant").join(p)
        v = pats["spearman_r"].dropna()
        row |= {"patient_spearman_median": float(v.median()) if len(v) else np.nan,
                "patient_pearson_median": float(pats["pearson_r"].median()),
                "n_patients_q_lt_0.05": int((pats["spearman_q"] < 0.05).sum())}
    return g, pats, row


def _by_patient(df: pd.DataFrame, slide_patient: pd.Series, genes: list[str]) -> pd.DataFrame:
    out = df.assign(patient=df["slide"].map(slide_patient).to_numpy())
    return out.groupby("patient", sort=True)[genes].mean()


def _with_fold_means(summary: pd.DataFrame, entries: list[str]) -> pd.DataFrame:
    """Add, per entry, a ``fold="mean"`` cv row: the mean of its per-fold rows (pooling
    out-of-fold predictions mixes fold-specific offsets; the fold mean does not)."""
    per_fold = summary[(summary["role"] == "cv") & (summary["fold"] != "pooled")]
    if not per_fold.empty:
        tags = ["entry", "model", "features", "kind", "role"]
        means = per_fold.groupby(tags, sort=False).mean(numeric_only=True).reset_index()
        means["fold"] = "mean"
        summary = pd.concat([summary, means[summary.columns]], ignore_index=True)
    fold_order = {"pooled": 0, "mean": 1}
    roles = {"cv": 0, "val": 1, "test": 2, "holdout": 3}
    ranks = {e: i for i, e in enumerate(entries)}
    keys = pd.DataFrame({
        "r": summary["role"].map(roles).fillna(9), "e": summary["entry"].map(ranks).fillna(99),
        "f": summary["fold"].map(lambda f: fold_order.get(f, 2))})
    order = keys.sort_values(["r", "e", "f"], kind="stable").index
    return summary.loc[order].reset_index(drop=True)


def evaluate_run(path: str | Path) -> pd.DataFrame:
    """Write ``metrics.csv``, ``patients.csv``, ``summary.csv`` and ``predictions.csv`` of a
    bulk run; returns the summary."""
    from ..atomic import write_csv, write_json

    rf = BulkRunFolder(path)
    genes = rf.read_json(rf.data_json)["genes"]
    slides = pd.read_csv(rf.slides_csv, dtype=str)
    slide_patient = slides.set_index("slide")["patient"]
    preds = collect_predictions(rf)
    if not rf.measured_csv.is_file():
        raise InputError(f"{rf.path}: no measured.csv; rerun `histoexpr bulk fit`")
    measured_slides = pd.read_csv(rf.measured_csv, index_col=0)
    measured_slides.index = measured_slides.index.astype(str)
    measured_slides = measured_slides.loc[slides["slide"], genes]
    measured = measured_slides.assign(patient=slide_patient.to_numpy()).groupby("patient")[
        genes].mean()
    costs = rf.cost_summary()["entries"]
    metrics, patients, summary = [], [], []
    for (entry, role), part in preds.groupby(["entry", "role"], sort=False):
        first = part.iloc[0]
        groups = [("pooled", part)]
        if role == "cv":
            groups += [(str(u), p) for u, p in part.groupby("unit", sort=True)]
        for fold, sub in groups:
            pred = _by_patient(sub, slide_patient, genes)
            if len(pred) < 3:
                logger.info("%s %s fold %s: %d patients, too few to score", entry, role, fold,
                            len(pred))
                continue
            g, pats, row = score(measured.loc[pred.index], pred)
            tags = {"entry": entry, "model": first["model"], "features": first["features"],
                    "kind": first["kind"], "role": role, "fold": fold}
            c = costs.get(entry, {})
            summary.append(tags | row | {k: c.get(k) for k in ("wall_s", "cpu_s", "gpu_s",
                                                                 "energy_wh", "n_fits")})
            m = g.drop(columns="constant").reset_index().melt(id_vars="gene", var_name="metric")
            metrics.append(m.assign(**tags))
            if len(pats.columns):
                patients.append(pats.reset_index().rename(columns={"sample": "patient"})
                                .assign(**tags))
    if not summary:
        raise InputError(f"{rf.path}: no prediction set has 3 patients or more to score")
    cols = ["entry", "model", "features", "kind", "role", "fold"]
    write_csv(rf.metrics, pd.concat(metrics)[[*cols, "gene", "metric", "value"]], index=False)
    if patients:
        write_csv(rf.patients_csv, pd.concat(patients), index=False)
    entries = [e["key"] for e in rf.read_json(rf.entries_json)]
    out = _with_fold_means(pd.DataFrame(summary), entries)
    write_csv(rf.summary, out, index=False)
    measured_rows = measured_slides.reset_index(names="slide").assign(
        entry="measured", model="measured", features="", kind="measured", unit="", role="")
    write_csv(rf.predictions_csv, pd.concat([measured_rows, preds])[
        ["entry", "model", "features", "kind", "unit", "role", "slide", *genes]], index=False)
    write_json(rf.evaluation_json, {"n_patients_measured": len(measured),
                                             "units": sorted(preds["unit"].unique().tolist())})
    return out
