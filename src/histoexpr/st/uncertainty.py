"""Prediction intervals for spots from the cross-validated residuals, and the coverage they
reach on sections no fold trained on (issue 20, item 6).

The calibration set is the main model's out-of-fold predictions: every cross-validation
fold predicts patients (or sections) it did not train on, so its residuals are exchangeable
with those of a new patient's spots as far as patients are exchangeable. Two intervals:

**constant** (split conformal, one width per gene): the half-width of gene ``g`` is the
``ceil((n + 1)(1 - alpha)) / n`` empirical quantile of its ``n`` absolute residuals;
``prediction ± half-width`` covers a new spot's value with probability at least
``1 - alpha``. It says how far off a spot usually is, not which spots are harder.

**adaptive** (normalised split conformal): a spot's difficulty ``sigma(spot)`` comes from
what the predictions alone show, so it exists for a new section too
(:func:`difficulty_features`): the spot's mean predicted level, how atypical its predicted
profile is within its section, how much it disagrees with its grid neighbours, how much the
neighbours disagree among themselves, and whether it sits on the tissue's edge. A ridge
regression of ``log`` of the spot's mean absolute residual (each gene's residual divided by
the gene's mean absolute residual, so no gene dominates) on these features gives
``sigma`` (:func:`fit_difficulty`). The score of a calibration spot is ``|residual| /
sigma``; per gene its conformal quantile ``q_g``; the interval is ``prediction ±
q_g * sigma(spot)``. The difficulty model is cross-fitted: the scores of cv fold ``j`` use a
model fitted on the other folds, so each score is out-of-sample like a new spot's, and the
model kept for new sections is fitted on every fold.

Coverage is measured twice, on data the intervals were not calibrated on: on the held-out
set (calibrated on every cv fold), and on each cv fold in turn (calibrated on the other
folds, the difficulty of the calibration folds fitted without the scored fold), per section.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> res = [{"genes": np.array(["A"]), "y_true": rng.normal(size=(500, 1)),
...         "y_pred": np.zeros((500, 1))}]
>>> hw = conformal_halfwidths(res, alpha=0.1)
>>> 1.5 < hw["A"] < 1.8   # the 90 % quantile of |N(0, 1)| is 1.645
True
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["ALPHA", "FEATURES", "conformal_halfwidths", "coverage", "difficulty_features",
           "difficulty_sigma", "fit_difficulty", "interval_halfwidths", "uncertainty_record"]

logger = logging.getLogger(__name__)

#: the default miscoverage: 90 % intervals
ALPHA = 0.1
#: the spot features the difficulty is regressed on (see :func:`difficulty_features`)
FEATURES = ("level", "atypical", "disagreement", "neighbour_spread", "edge")
#: the ridge penalty of the difficulty model (on standardised features)
RIDGE = 1.0
#: log-difficulty targets are ``log(mean scaled |residual| + EPS)``
EPS = 1e-3

XYOf = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


# ----------------------------------------------------------------------- constant widths


def _residuals(results: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    per: dict[str, list[np.ndarray]] = {}
    for r in results:
        d = np.abs(np.asarray(r["y_true"], float) - np.asarray(r["y_pred"], float))
        for j, g in enumerate(map(str, r["genes"])):
            per.setdefault(g, []).append(d[:, j])
    return {g: np.concatenate(v) for g, v in per.items()}


def _quantile(scores: np.ndarray, alpha: float) -> float:
    """The conformal quantile: the ``ceil((n + 1)(1 - alpha)) / n`` empirical one."""
    n = len(scores)
    level = min(1.0, math.ceil((n + 1) * (1 - alpha)) / n)
    return float(np.quantile(scores, level, method="higher"))


def conformal_halfwidths(results: list[dict[str, Any]], *, alpha: float = ALPHA
                         ) -> dict[str, float]:
    """Per gene, the split-conformal half-width from the residuals of ``results``."""
    return {g: _quantile(d, alpha) for g, d in _residuals(results).items() if len(d)}


def coverage(results: list[dict[str, Any]], halfwidths: dict[str, float]) -> dict[str, Any]:
    """The share of ``results``' values inside ``prediction ± half-width``: over every spot
    and gene, and the spread of the per-gene shares."""
    per_gene = {}
    for g, d in _residuals(results).items():
        if g in halfwidths and len(d):
            per_gene[g] = float((d <= halfwidths[g]).mean())
    return _summary(per_gene)


def _summary(per_gene: dict[str, float]) -> dict[str, Any]:
    if not per_gene:
        return {"coverage": None, "n_genes": 0}
    v = np.array(list(per_gene.values()))
    return {"coverage": float(v.mean()), "coverage_gene_p10": float(np.quantile(v, 0.1)),
            "coverage_gene_p90": float(np.quantile(v, 0.9)), "n_genes": len(v)}


# ----------------------------------------------------------------------- spot difficulty


def _neighbours(xy: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(i, j)`` (both directions) of spots within ``radius`` grid steps."""
    from scipy.spatial import cKDTree

    from ..features.context import spot_grid

    # the grid's own step and jitter allowance, as context and smoothing find neighbours
    pairs = cKDTree(xy).query_pairs(r=spot_grid(xy).reach(radius), output_type="ndarray")
    if not len(pairs):
        return np.zeros(0, int), np.zeros(0, int)
    return np.r_[pairs[:, 0], pairs[:, 1]], np.r_[pairs[:, 1], pairs[:, 0]]


def difficulty_features(pred: Any, xy: Any, sections: Any, *, radius: float = 1.0
                        ) -> np.ndarray:
    """``(spots, len(FEATURES))``: what the predictions show about each spot, per section.

    ``level`` is the mean predicted expression over genes; the others use each gene's
    predictions standardised within the section: ``atypical`` is the root mean square of
    the spot's standardised profile, ``disagreement`` that of its difference from the mean
    of its grid neighbours (within ``radius`` grid steps), ``neighbour_spread`` the root
    mean square over genes of the neighbours' standard deviation, ``edge`` the share of the
    section's usual neighbour count the spot lacks (a spot without neighbours: 1).

    Examples
    --------
    >>> xy = np.array([[0, 0], [1, 0], [2, 0], [3, 0]], float)
    >>> f = difficulty_features(np.array([[0.0], [0.0], [0.0], [4.0]]), xy, np.zeros(4))
    >>> f[:, FEATURES.index("edge")].tolist()   # end spots have one neighbour of two
    [0.5, 0.0, 0.0, 0.5]
    >>> bool(f[3, 2] > f[0, 2])                  # the odd spot disagrees most
    True
    """
    pred = np.asarray(pred, float)
    xy = np.asarray(xy, float)
    sections = np.asarray(sections).astype(str)
    out = np.zeros((len(pred), len(FEATURES)))
    for s in np.unique(sections):
        rows = np.flatnonzero(sections == s)
        p = pred[rows]
        sd = p.std(axis=0)
        z = (p - p.mean(axis=0)) / np.where(sd > 1e-12, sd, 1.0)
        out[rows, 0] = p.mean(axis=1)
        out[rows, 1] = np.sqrt((z ** 2).mean(axis=1))
        i, j = _neighbours(xy[rows], radius) if len(rows) > 1 else (np.zeros(0, int),) * 2
        n = np.bincount(i, minlength=len(rows)).astype(float)
        total = np.zeros_like(z)
        square = np.zeros_like(z)
        np.add.at(total, i, z[j])
        np.add.at(square, i, z[j] ** 2)
        has = n > 0
        mean = np.where(has[:, None], total / np.maximum(n, 1)[:, None], z)
        var = np.clip(square / np.maximum(n, 1)[:, None] - mean ** 2, 0, None)
        out[rows, 2] = np.sqrt(((z - mean) ** 2).mean(axis=1))
        out[rows, 3] = np.sqrt(np.where(has[:, None], var, 0.0).mean(axis=1))
        full = n.max() if len(n) and n.max() > 0 else 1.0
        out[rows, 4] = 1.0 - n / full
    return out


def _scaled_target(folds: list[dict[str, Any]]) -> list[np.ndarray]:
    """Per fold, ``log(mean_g |r_g| / m_g + EPS)`` with ``m_g`` the gene's mean |r| over
    ``folds``."""
    scale: dict[str, list[float]] = {}
    for f in folds:
        for j, g in enumerate(f["genes"]):
            scale.setdefault(g, []).append(float(f["absres"][:, j].sum()))
    n = sum(len(f["absres"]) for f in folds)
    m = {g: sum(v) / n for g, v in scale.items()}
    out = []
    for f in folds:
        den = np.array([m[g] for g in f["genes"]])
        ok = den > 0
        a = f["absres"][:, ok] / den[ok] if ok.any() else np.ones((len(f["absres"]), 1))
        out.append(np.log(a.mean(axis=1) + EPS))
    return out


def fit_difficulty(folds: list[dict[str, Any]], *, ridge: float = RIDGE) -> dict[str, Any]:
    """A difficulty model (JSON-ready) fitted on ``folds``, each ``{"genes", "absres"
    (spots x genes), "feats" (spots x FEATURES)}``: ridge of the scaled log |residual| on
    the standardised features. ``sigma`` is 1 at the median training spot and is kept within
    the range of the training spots' fitted values (no extrapolation)."""
    x = np.concatenate([f["feats"] for f in folds])
    t = np.concatenate(_scaled_target(folds))
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    xs = (x - mu) / sd
    coef = np.linalg.solve(xs.T @ xs + ridge * np.eye(xs.shape[1]), xs.T @ (t - t.mean()))
    fitted = xs @ coef + t.mean()
    centre = float(np.median(fitted))
    ss = float(((t - t.mean()) ** 2).sum())
    return {"features": list(FEATURES), "radius": 1.0, "mean": mu.tolist(),
            "scale": sd.tolist(), "coef": coef.tolist(), "intercept": float(t.mean()) - centre,
            "log_sigma_range": [float(np.quantile(fitted, 0.005)) - centre,
                                float(np.quantile(fitted, 0.995)) - centre],
            "n_spots": len(t),
            "r2": float(1 - ((t - fitted) ** 2).sum() / ss) if ss > 0 else None}


def difficulty_sigma(model: dict[str, Any], feats: np.ndarray) -> np.ndarray:
    """``sigma`` per spot from a :func:`fit_difficulty` model and :func:`difficulty_features`."""
    xs = (np.asarray(feats, float) - np.asarray(model["mean"])) / np.asarray(model["scale"])
    lo, hi = model["log_sigma_range"]
    return np.exp(np.clip(xs @ np.asarray(model["coef"]) + model["intercept"], lo, hi))


# ----------------------------------------------------------------------- calibration


def _prepared(r: dict[str, Any], xy_of: XYOf | None) -> dict[str, Any]:
    """A result with what the intervals need: genes, |residuals|, sections, features."""
    pred = np.asarray(r["y_pred"], float)
    out = {"genes": [str(g) for g in r["genes"]],
           "absres": np.abs(np.asarray(r["y_true"], float) - pred),
           "sections": np.array([str(s).split(":", 1)[0] for s in r["spots"]])}
    if xy_of is not None:
        xy, sec = xy_of(np.asarray(r["spots"]))
        out["sections"] = np.asarray(sec).astype(str)
        out["feats"] = difficulty_features(pred, xy, out["sections"])
    return out


def _adaptive_quantiles(folds: list[dict[str, Any]], sigmas: list[np.ndarray],
                        alpha: float) -> dict[str, float]:
    per: dict[str, list[np.ndarray]] = {}
    for f, s in zip(folds, sigmas):
        for j, g in enumerate(f["genes"]):
            per.setdefault(g, []).append(f["absres"][:, j] / s)
    return {g: _quantile(np.concatenate(v), alpha) for g, v in per.items()}


def _scored(test: list[dict[str, Any]], widths: list[np.ndarray]) -> dict[str, Any]:
    """Coverage (per gene, its spread, per section), mean interval width (upper - lower)
    of ``test`` folds given each fold's half-widths ``(spots, genes)`` (NaN: no width)."""
    inside: dict[str, list[np.ndarray]] = {}
    by_section: dict[str, list[np.ndarray]] = {}
    total_w, n_w = 0.0, 0
    for f, w in zip(test, widths):
        ok = np.isfinite(w).all(axis=0)
        if not ok.any():
            continue
        cov = f["absres"][:, ok] <= w[:, ok]
        for j, g in enumerate(np.asarray(f["genes"])[ok]):
            inside.setdefault(g, []).append(cov[:, j])
        for s in np.unique(f["sections"]):
            by_section.setdefault(s, []).append(cov[f["sections"] == s].mean(axis=1))
        total_w += float(2 * w[:, ok].sum())
        n_w += int(w[:, ok].size)
    out = _summary({g: float(np.concatenate(v).mean()) for g, v in inside.items()})
    out["mean_width"] = total_w / n_w if n_w else None
    out["n_spots"] = int(sum(len(f["absres"]) for f in test))
    out["per_section"] = {s: float(np.concatenate(v).mean()) for s, v in by_section.items()}
    return out


def _tracking(test: list[dict[str, Any]], sigmas: list[np.ndarray]) -> dict[str, Any]:
    """How well ``sigma`` ranks the spots by error: Spearman with the spot's mean scaled
    |residual|, the mean over genes of Spearman with the gene's |residual|, and the ratio
    of the mean |residual| of the hardest third of spots (by sigma) to the easiest third."""
    from scipy.stats import spearmanr

    s = np.concatenate(sigmas)
    t = np.exp(np.concatenate(_scaled_target(test))) - EPS
    if len(s) < 3 or np.ptp(s) == 0:
        return {"spearman_sigma_error": None}
    per_gene = []
    for f, sg in zip(test, sigmas):
        for j in range(f["absres"].shape[1]):
            a = f["absres"][:, j]
            if len(a) > 2 and np.ptp(a) > 0 and np.ptp(sg) > 0:
                per_gene.append(spearmanr(sg, a).statistic)
    lo, hi = np.quantile(s, [1 / 3, 2 / 3])
    return {"spearman_sigma_error": float(spearmanr(s, t).statistic),
            "spearman_sigma_error_gene_mean": float(np.mean(per_gene)) if per_gene else None,
            "error_ratio_hard_easy_third": float(t[s >= hi].mean() / t[s <= lo].mean())
            if t[s <= lo].mean() > 0 else None}


def _constant_widths(folds: list[dict[str, Any]], hw: dict[str, float]) -> list[np.ndarray]:
    return [np.broadcast_to(np.array([hw.get(g, np.nan) for g in f["genes"]]),
                            f["absres"].shape) for f in folds]


def _adaptive_widths(folds: list[dict[str, Any]], q: dict[str, float],
                     sigmas: list[np.ndarray]) -> list[np.ndarray]:
    return [np.outer(s, [q.get(g, np.nan) for g in f["genes"]]) for f, s in zip(folds, sigmas)]


def _by_sigma_third(test: list[dict[str, Any]], sigmas: list[np.ndarray],
                    widths: list[np.ndarray]) -> dict[str, float]:
    """Coverage in the easiest and hardest third of the spots (by sigma): conditional
    coverage that a constant width cannot hold."""
    s = np.concatenate(sigmas)
    cov = []
    for f, w in zip(test, widths):
        ok = np.isfinite(w).all(axis=0)  # a gene without a width has none for every spot
        cov.append((f["absres"][:, ok] <= w[:, ok]).mean(axis=1) if ok.any()
                   else np.full(len(w), np.nan))
    cov = np.concatenate(cov)
    lo, hi = np.quantile(s, [1 / 3, 2 / 3])
    easy, hard = cov[(s <= lo) & np.isfinite(cov)], cov[(s >= hi) & np.isfinite(cov)]
    return {"easiest": float(easy.mean()) if len(easy) else None,
            "hardest": float(hard.mean()) if len(hard) else None}


def _compare(test: list[dict[str, Any]], cw: list[np.ndarray], aw: list[np.ndarray],
             sigmas: list[np.ndarray]) -> dict[str, Any]:
    """Both intervals on ``test`` given each fold's constant and adaptive half-widths."""
    const, adapt = _scored(test, cw), _scored(test, aw)
    adapt.update(_tracking(test, sigmas))
    if np.ptp(np.concatenate(sigmas)) > 0:
        const["coverage_by_sigma_third"] = _by_sigma_third(test, sigmas, cw)
        adapt["coverage_by_sigma_third"] = _by_sigma_third(test, sigmas, aw)
    return {"constant": const, "adaptive": adapt}


def _cross_fit_sigmas(cal: list[dict[str, Any]], exclude: int | None = None
                      ) -> tuple[list[np.ndarray], bool]:
    """Each calibration fold's sigma from a model fitted on the other calibration folds
    (and never on fold ``exclude``); with a single calibration fold, its own (in-sample,
    flagged ``False``)."""
    out, honest = [], True
    for j, f in enumerate(cal):
        train = [g for i, g in enumerate(cal) if i != j]
        if not train:
            train, honest = [f], False
        out.append(difficulty_sigma(fit_difficulty(train), f["feats"]))
    return out, honest


def _cv_protocol(folds: list[dict[str, Any]], alpha: float) -> dict[str, Any]:
    """Each cv fold scored as held out: calibrated on the other folds only."""
    cw, aw, sigmas, honest = [], [], [], True
    for k, f in enumerate(folds):
        cal = [g for i, g in enumerate(folds) if i != k]
        cal_sig, ok = _cross_fit_sigmas(cal)
        honest &= ok
        sigmas.append(difficulty_sigma(fit_difficulty(cal), f["feats"]))
        cw += _constant_widths([f], _quantiles_of(cal, alpha))
        aw += _adaptive_widths([f], _adaptive_quantiles(cal, cal_sig, alpha), sigmas[-1:])
    return {"protocol": "each cv fold scored as held out, calibrated on the other folds; "
                        "their difficulty cross-fitted without the scored fold"
                        + ("" if honest else " (two folds: the calibration fold's difficulty "
                           "is fitted on itself)"),
            **_compare(folds, cw, aw, sigmas)}


def _quantiles_of(folds: list[dict[str, Any]], alpha: float) -> dict[str, float]:
    per: dict[str, list[np.ndarray]] = {}
    for f in folds:
        for j, g in enumerate(f["genes"]):
            per.setdefault(g, []).append(f["absres"][:, j])
    return {g: _quantile(np.concatenate(v), alpha) for g, v in per.items()}


def uncertainty_record(results: list[dict[str, Any]], *, alpha: float = ALPHA,
                       xy_of: XYOf | None = None) -> dict[str, Any] | None:
    """``uncertainty.json``: the constant half-widths and the adaptive model from the main
    model's cv results, and the coverage of both on its held-out results and on each cv
    fold in turn (``None`` without cv results). ``xy_of(spots) -> (xy, sections)`` gives
    the spots' positions; without it only the constant widths are made."""
    main = [r for r in results if r["kind"] == "model"]
    cv = [r for r in main if r["role"] == "cv"]
    if not cv:
        return None
    hw = conformal_halfwidths(cv, alpha=alpha)
    held = [r for r in main if r["role"] != "cv"]
    rec: dict[str, Any] = {
        "method": "split conformal on the cross-validated residuals, per gene",
        "interval": "constant", "predictor": str(cv[0].get("key", "")),
        "alpha": alpha, "nominal_coverage": 1 - alpha,
        "n_calibration_spots": int(sum(len(r["spots"]) for r in cv)), "halfwidth": hw,
        "held_out": None, "adaptive": None, "cv": None,
    }
    folds = [_prepared(r, xy_of) for r in cv]
    test = [_prepared(r, xy_of) for r in held]
    if held:
        rec["held_out"] = _scored(test, _constant_widths(test, hw))
    if xy_of is None or len(cv) < 2:
        logger.info("one width per gene only (%s)", "no spot positions" if xy_of is None
                    else "adaptive intervals need two or more cv folds")
        return rec
    sig, honest = _cross_fit_sigmas(folds)
    model = fit_difficulty(folds)
    q = _adaptive_quantiles(folds, sig, alpha)
    rec["interval"] = "adaptive"
    rec["adaptive"] = {
        "method": "normalised split conformal: |residual| / sigma(spot) per gene; sigma from "
                  "a ridge regression of the log mean scaled |residual| on spot features of "
                  "the predictions (histoexpr.st.uncertainty.difficulty_features)",
        "calibration": "cross-fit: each cv fold's scores use a difficulty model fitted on the "
                       "other folds" + ("" if honest else " (one other fold)"),
        "difficulty": model, "quantile": q, "held_out": None}
    if held:
        sigmas = [difficulty_sigma(model, f["feats"]) for f in test]
        rec["held_out_comparison"] = _compare(test, _constant_widths(test, hw),
                                              _adaptive_widths(test, q, sigmas), sigmas)
        rec["adaptive"]["held_out"] = rec["held_out_comparison"]["adaptive"]
    rec["cv"] = _cv_protocol(folds, alpha)
    where = rec["held_out_comparison"] if held else rec["cv"]
    logger.info("%.0f %% intervals on %s: constant cover %.1f %% (mean width %.3g), adaptive "
                "%.1f %% (mean width %.3g)", 100 * (1 - alpha),
                "the held-out set" if held else "each cv fold", 100 * where["constant"]["coverage"],
                where["constant"]["mean_width"], 100 * where["adaptive"]["coverage"],
                where["adaptive"]["mean_width"])
    return rec


def interval_halfwidths(record: dict[str, Any], pred: Any, genes: list[str], xy: Any,
                        sections: Any) -> tuple[np.ndarray, str]:
    """``(spots, genes)`` half-widths for new predictions from an ``uncertainty.json``
    record, and which method made them: ``adaptive`` when the record has it (genes it has
    no quantile for fall back to their constant width), else ``constant``; NaN for a gene
    the record does not know."""
    pred = np.asarray(pred, float)
    hw = np.array([record["halfwidth"].get(g, np.nan) for g in genes], float)
    ad = record.get("adaptive")
    if not ad:
        return np.broadcast_to(hw, pred.shape).astype(np.float32), "constant"
    model = ad["difficulty"]
    sigma = difficulty_sigma(model, difficulty_features(pred, xy, sections,
                                                        radius=model.get("radius", 1.0)))
    q = np.array([ad["quantile"].get(g, np.nan) for g in genes], float)
    out = np.where(np.isfinite(q), np.outer(sigma, q), hw)
    return out.astype(np.float32), "adaptive"
